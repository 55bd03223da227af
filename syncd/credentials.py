"""The API token from systemd's credentials (``LoadCredential=shutterstock-token:...``).

systemd hands a service its credentials as files in ``$CREDENTIALS_DIRECTORY``, readable by the
service alone and never in its environment. ``token_from_credentials`` reads the token from
there; the caller falls back to ``api.token`` and ``SHUTTERSTOCK_API_TOKEN`` when it is None.
"""

from __future__ import annotations

import os
from pathlib import Path

from syncd.errors import ConfigError

TOKEN_CREDENTIAL = "shutterstock-token"


def token_from_credentials(name: str = TOKEN_CREDENTIAL) -> str | None:
    """The token in ``$CREDENTIALS_DIRECTORY/<name>`` (surrounding whitespace and the final
    newline removed), or None when there is no such directory, file, or the file is empty.
    A file that exists but cannot be read is a configuration error (it never shows the
    token)."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        return None
    path = Path(directory) / name
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError("api.token", f"cannot read the credential {path}: {reason}") from None
    return token or None
