"""The errors that decide how a run ends (CONTRACT section 2)."""


class SyncdError(Exception):
    """Base of syncd's own errors; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(SyncdError):
    """A configuration key is unknown, of the wrong type or out of range."""

    exit_code = 2

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class AuthError(SyncdError):
    """The API refused the credentials (401): the run stops at once."""

    exit_code = 3


class StorageError(SyncdError):
    """The storage backend cannot be written."""

    exit_code = 4


class StorageBusy(SyncdError):
    """Another run holds the lock on this storage: nothing was done (sysexits' EX_TEMPFAIL,
    try again later)."""

    exit_code = 75


class ApiUnreachable(SyncdError):
    """The API could not be reached at all: no answer after the retries (CONTRACT 2)."""

    exit_code = 5
