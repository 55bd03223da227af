from tests.pgserver import postgres_server, postgres_url  # noqa: F401
