"""What a new user saw go wrong, and the exact line and exit code syncd now gives instead
(CONTRACT 2). Every test runs the real command against the simulator over HTTP."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from tests.conftest import TOKEN


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_api_that_cannot_be_reached_exits_5_at_once_naming_its_url(syncd):
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    done = syncd.sync(env={"SYNCD_API__BASE_URL": url, "SYNCD_API__MAX_RETRIES": "5"})
    elapsed = time.monotonic() - started
    assert done.returncode == 5, done.stderr
    assert last_line(done.stderr) == (
        f"syncd: the API at {url} could not be reached (GET /v2/images/licenses: connection "
        "refused (after 2 attempts)); check api.base_url, the network and any proxy; "
        "everything queued stays queued"
    )
    # one retry, not the backoff ladder of max_retries: the port is simply closed
    assert done.summary["api_requests"] == 2
    assert elapsed < 8


def test_a_variable_that_is_not_a_key_is_a_configuration_error_naming_the_key(syncd):
    done = syncd.sync(env={"SYNCD_API_BASE_URL": syncd.sim.base_url})
    assert done.returncode == 2
    assert last_line(done.stderr) == (
        "syncd: configuration error: SYNCD_API_BASE_URL: not a configuration variable; did you "
        "mean SYNCD_API__BASE_URL (the key api.base_url)?"
    )
    assert syncd.sim.requests == [] and not syncd.db_path.exists()


def test_postgres_scheme_is_refused_with_the_url_to_write(syncd):
    done = syncd.sync(env={"SYNCD_DATABASE__URL": "postgres://syncd@db.internal/syncd"})
    assert done.returncode == 2
    assert last_line(done.stderr) == (
        "syncd: configuration error: database.url: postgres:// is not a SQLAlchemy URL: write "
        "postgresql+psycopg://..."
    )


def test_a_database_that_cannot_be_opened_exits_4_naming_its_path(syncd, tmp_path):
    not_a_database = tmp_path / "garbage.db"
    not_a_database.write_bytes(b"this is not SQLite\n" * 100)
    done = syncd.sync(env={"SYNCD_DATABASE__URL": f"sqlite:///{not_a_database}"})
    assert done.returncode == 4
    assert last_line(done.stderr) == (
        f"syncd: cannot use the database (SQLite file '{not_a_database}'): file is not a "
        "database; check database.url and that the database is up and writable"
    )
    assert syncd.sim.requests == []
    assert not_a_database.read_bytes() == b"this is not SQLite\n" * 100


def test_a_folder_where_the_database_file_should_be_exits_4_naming_it(syncd, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    done = syncd.sync(env={"SYNCD_DATABASE__URL": f"sqlite:///{folder}"})
    assert done.returncode == 4
    assert last_line(done.stderr) == (
        f"syncd: cannot use the database (SQLite file '{folder}'): unable to open database "
        "file; check database.url and that the database is up and writable"
    )


def test_a_401_names_the_token_variable_and_the_scope(syncd):
    done = syncd.sync(env={"SHUTTERSTOCK_API_TOKEN": "not-the-token"})
    assert done.returncode == 3
    assert last_line(done.stderr) == (
        "syncd: the API refused the credentials (401) on GET /v2/images/licenses: check the "
        "token in SHUTTERSTOCK_API_TOKEN (or api.token), that it has not expired, and that it "
        "has the licenses.view scope"
    )
    assert "not-the-token" not in done.stderr + done.stdout


def test_an_unknown_media_type_is_named_with_the_known_ones(syncd):
    done = syncd.run("sync", "--media", "images,imagez")
    assert done.returncode == 2
    assert last_line(done.stderr) == (
        "syncd sync: error: argument --media: unknown media type 'imagez' (known: images, "
        "videos, audio, editorial/images, editorial/videos)"
    )
    assert done.stderr.startswith("usage: syncd sync ")


def test_an_unknown_option_prints_that_subcommands_usage(syncd):
    done = syncd.run("sync", "--bogus")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: syncd sync ")
    assert "--dry-run" in done.stderr and "--media LIST" in done.stderr
    assert last_line(done.stderr) == "syncd sync: error: unrecognized arguments: --bogus"
    status = syncd.run("status", "--bogus")
    assert status.returncode == 2 and status.stderr.startswith("usage: syncd status ")
    assert last_line(status.stderr) == "syncd status: error: unrecognized arguments: --bogus"


def test_a_config_file_read_from_another_folder_keeps_its_relative_paths_beside_it(syncd, tmp_path):
    """`--config /etc/syncd/syncd.toml sync` from elsewhere used to fill the current folder."""
    etc = tmp_path / "etc-syncd"
    etc.mkdir()
    config = etc / "syncd.toml"
    config.write_text(
        f'[api]\nbase_url = "{syncd.sim.base_url}"\n\n'
        '[database]\nurl = "sqlite:///state/syncd.db"\n\n'
        '[storage]\npath = "dam"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in syncd.env.items() if not k.startswith("SYNCD_")}
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncd",
            "sync",
            "--config",
            str(config),
            "--json",
            "--log-format=json",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(last_line(done.stdout))["downloaded"] == 9
    assert list(elsewhere.iterdir()) == []
    assert (etc / "state" / "syncd.db").is_file()
    stored = [p for p in (etc / "dam").rglob("*") if p.is_file() and p.suffix != ".json"]
    assert len(stored) == 9
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    loaded = [e for e in events if e.get("event") == "config.loaded"]
    assert len(loaded) == 1
    assert loaded[0]["config"] == str(config)
    assert loaded[0]["database"] == f"SQLite file '{etc / 'state' / 'syncd.db'}'"
    assert loaded[0]["storage"] == f"folder '{etc / 'dam'}'"
    assert TOKEN not in done.stderr


def test_a_dry_run_prints_the_whole_plan_and_its_summary_adds_up(syncd):
    done = syncd.sync("--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    would = [line for line in lines if line.startswith("would redownload ")]
    present = [line for line in lines if line.startswith("already present ")]
    unavailable = [line for line in lines if line.startswith("unavailable ")]
    assert len(would) == 9 and len(present) == 1 and len(unavailable) == 2
    assert (
        "unavailable images/135658703 size huge (license i5302216985): not downloadable "
        "(is_downloadable: false) and relicensing is off"
    ) in unavailable
    assert any(
        line.startswith("unavailable editorial/images/9804979n size original (license ")
        and line.endswith("): editorial media has no redownload and relicensing is off")
        for line in unavailable
    )
    assert re.fullmatch(
        r"already present once fetched images/59656357 size huge \(license i\d+\)", present[0]
    )
    assert lines[-2] == (
        "plan: 9 to fetch, 1 already present, 2 unavailable, 0 would fail, 0 credits; dry run: "
        "nothing was fetched, recorded or moved"
    )
    summary = done.summary
    assert summary["planned"] == 9 and summary["downloaded"] == 0
    assert (
        summary["planned"] + summary["already_present"] + summary["unavailable"] + summary["failed"]
        == summary["new_licenses"]
        == 12
    )


def test_config_show_prints_each_setting_with_where_it_came_from_and_hides_the_token(syncd):
    done = syncd.run("config", "show", "--json", env={"SYNCD_SYNC__CONCURRENCY": "3"})
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["settings"]
    assert shown["sync.concurrency"] == {
        "value": 3,
        "from": "environment (SYNCD_SYNC__CONCURRENCY)",
    }
    assert shown["sync.bwlimit"] == {"value": None, "from": "default"}
    assert shown["api.token"]["value"] == "***"
    human = syncd.run("config", "show", env={"SYNCD_SYNC__CONCURRENCY": "3"})
    assert re.search(r"^sync\.concurrency +3 +\(environment", human.stdout, re.M)
    assert TOKEN not in done.stdout + done.stderr + human.stdout + human.stderr


@pytest.mark.parametrize(
    ("command", "codes"),
    [
        (
            ["sync"],
            [
                "0 ok",
                "1 some licenses",
                "2 usage",
                "3 the API",
                "4 storage",
                "5 the API",
                "75 another",
                "130 interrupted",
                "143 terminated",
            ],
        ),
        (["verify"], ["0 everything", "1 something", "2 usage", "4 storage", "75 a sync", "130"]),
        (["status"], ["0 the report", "1 there is no syncd database", "2 usage", "4 the database"]),
        (["config", "show"], ["0 ok", "2 usage", "4 storage"]),
        (["db", "upgrade"], ["0 ok", "4 storage"]),
    ],
)
def test_each_commands_help_lists_its_exit_codes_the_token_variable_and_the_defaults(
    syncd, command, codes
):
    done = syncd.run(*command, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # argparse reflows nothing in the epilog; lines do
    for code in codes:
        assert code in text, (code, text)
    assert "SHUTTERSTOCK_API_TOKEN" in text
    assert "database.url sqlite:///syncd.db" in text and "storage.path ./dam" in text
    assert "relative to its folder" in text
