"""credentials.py: the API token from systemd's $CREDENTIALS_DIRECTORY."""

from __future__ import annotations

import pytest

from syncd.credentials import TOKEN_CREDENTIAL, token_from_credentials
from syncd.errors import ConfigError

TOKEN = "v2/cred-token-91c4e0"


def test_token_is_read_from_the_credentials_directory(tmp_path, monkeypatch):
    (tmp_path / "shutterstock-token").write_text(TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert TOKEN_CREDENTIAL == "shutterstock-token"
    assert token_from_credentials() == TOKEN


def test_no_credentials_directory_gives_none(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert token_from_credentials() is None


def test_directory_without_the_token_file_gives_none(tmp_path, monkeypatch):
    (tmp_path / "other").write_text("x")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert token_from_credentials() is None


def test_empty_token_file_gives_none(tmp_path, monkeypatch):
    (tmp_path / "shutterstock-token").write_text("\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert token_from_credentials() is None


def test_unreadable_token_is_a_config_error_that_hides_the_token(tmp_path, monkeypatch):
    (tmp_path / "shutterstock-token").mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError, match="api.token: cannot read the credential") as caught:
        token_from_credentials()
    assert TOKEN not in str(caught.value)


def test_sync_takes_the_token_from_systemds_credential_before_the_environment(tmp_path, syncd):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "shutterstock-token").write_text(syncd.sim.token + "\n")
    done = syncd.sync(
        "--media",
        "audio",
        env={"CREDENTIALS_DIRECTORY": str(credentials), "SHUTTERSTOCK_API_TOKEN": "stale-token"},
    )
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] >= 1
    shown = syncd.run("config", "show", env={"CREDENTIALS_DIRECTORY": str(credentials)})
    line = next(x for x in shown.stdout.splitlines() if x.startswith("api.token"))
    assert "credential" in line and syncd.sim.token not in shown.stdout
