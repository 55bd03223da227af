"""Configuration: every key is parsed and checked; errors name the key."""

import dataclasses
import re

import pytest

from syncd.config import load, parse_duration
from syncd.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return str(path)


def test_defaults_match_the_contract(tmp_path):
    config = load(environ={}, search=False)
    assert config.api.base_url == "https://api.shutterstock.com"
    assert config.database.url == "sqlite:///syncd.db"
    assert config.storage.key_template == "{media_type}/{media_id}/{size}{ext}"
    assert config.sync.media == (
        "images",
        "videos",
        "audio",
        "editorial/images",
        "editorial/videos",
    )
    assert config.sync.concurrency == 4
    assert config.updates.lookback == 86400
    assert config.jobs.catch_up.interval_s == 900
    assert config.jobs.backfill.interval_s == 7 * 86400
    assert config.serve.grace_s == 10
    assert config.relicense.metadata == {}


def test_token_comes_from_the_environment_and_never_shows(tmp_path):
    config = load(environ={"SHUTTERSTOCK_API_TOKEN": "s3cr3t-token"}, search=False)
    assert config.api.token.reveal() == "s3cr3t-token"
    assert "s3cr3t" not in repr(config)


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[sync]\nconcurrency = 2\nmedia = ["images"]\n')
    config = load(
        path,
        environ={
            "SYNCD_SYNC__CONCURRENCY": "8",
            "SYNCD_SYNC__MEDIA": "videos,audio",
            "SYNCD_RELICENSE__METADATA": '{"purchase_order": "PO-1"}',
        },
    )
    assert config.sync.concurrency == 8
    assert config.sync.media == ("videos", "audio")
    assert config.relicense.metadata == {"purchase_order": "PO-1"}


@pytest.mark.parametrize(
    "text, key",
    [
        ("[sync]\nconcurrency = 0\n", "sync.concurrency"),
        ("[sync]\nconcurrency = 'four'\n", "sync.concurrency"),
        ("[sync]\nmedia = ['images', 'photos']\n", "sync.media"),
        ("[sync]\nbogus = 1\n", "sync.bogus"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[updates]\non_deletion = 'shred'\n", "updates.on_deletion"),
        ("[updates]\nlookback = '3 days'\n", "updates.lookback"),
        ("[updates]\ncountry = 'us'\n", "updates.country"),
        ("[jobs]\ncatch_up = '61 * * * *'\n", "jobs.catch_up"),
        ("[jobs]\nverify = 'sometimes'\n", "jobs.verify"),
        ("[api]\nbase_url = 'http://api.example.com'\n", "api.base_url"),
        ("[api]\nallow_http = 'yes'\n", "api.allow_http"),
        ("[storage]\nkey_template = '{media_id}/{size}{ext}'\n", "storage.key_template"),
        (
            "[storage]\nkey_template = '../{media_type}/{media_id}/{size}{ext}'\n",
            "storage.key_template",
        ),
        (
            "[storage]\nkey_template = '{media_type}/{media_id}/{size}{nope}'\n",
            "storage.key_template",
        ),
        ("[storage]\nbackend = 's3'\n", "storage.bucket"),
        ("[sync]\nrelicense_budget = -1\n", "sync.relicense_budget"),
        ("[serve]\ngrace_s = -1\n", "serve.grace_s"),
        ("[relicense]\nmetadata = 'x'\n", "relicense.metadata"),
    ],
)
def test_bad_values_name_their_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ={})
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_unknown_environment_key_is_an_error():
    with pytest.raises(ConfigError) as caught:
        load(environ={"SYNCD_SYNC__CONCURENCY": "3"}, search=False)
    assert caught.value.key == "SYNCD_SYNC__CONCURENCY"


def test_broken_toml_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        load(write(tmp_path, "[sync\n"), environ={})
    with pytest.raises(ConfigError):
        load(str(tmp_path / "absent.toml"), environ={})


def test_schedules_accept_durations_cron_and_off(tmp_path):
    config = load(
        write(tmp_path, "[jobs]\ncatch_up = '10s'\nupdates = '*/5 * * * *'\nverify = 'off'\n"),
        environ={},
    )
    assert config.jobs.catch_up.interval_s == 10
    assert config.jobs.updates.cron == "*/5 * * * *"
    assert config.jobs.verify.off


@pytest.mark.parametrize(
    "text, seconds", [("30m", 1800), ("6h", 21600), ("3d", 259200), ("1h30m", 5400), ("10s", 10)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "5", "m", "1x", "-1h", "1h 30m"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_http_to_loopback_is_allowed_without_allow_http():
    config = load(environ={"SYNCD_API__BASE_URL": "http://127.0.0.1:8080"}, search=False)
    assert config.api.base_url == "http://127.0.0.1:8080"


def test_example_config_names_every_key():
    """Each key of every section is in the example, set to its default or, where it has
    none, as a commented-out example."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "config" / "syncd.example.toml").read_text()
    sections = re.split(r"^\[(\w+)\]$", text, flags=re.M)
    by_section = dict(zip(sections[1::2], sections[2::2], strict=True))
    defaults = load(environ={}, search=False)
    names = [f.name for f in dataclasses.fields(defaults) if f.name not in ("source", "origins")]
    assert len(names) == 9
    for section in names:
        body = by_section.get(section)
        assert body is not None, f"no [{section}] in the example"
        for key in dataclasses.fields(getattr(defaults, section)):
            assert re.search(rf"^#? ?{key.name} = ", body, re.M), f"{section}.{key.name}"


def test_example_config_documents_the_defaults():
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "config" / "syncd.example.toml"
    documented = load(str(example), environ={})
    defaults = load(environ={}, search=False)
    for section in ("api", "sync", "updates", "relicense", "verify", "jobs", "serve"):
        assert repr(getattr(documented, section)) == repr(getattr(defaults, section)), section
    for key in dataclasses.fields(defaults.storage):
        if key.name != "path":
            value = getattr(documented.storage, key.name)
            assert value == getattr(defaults.storage, key.name), key.name
    # relative paths in a file resolve against its folder (CONTRACT 3)
    assert documented.database.url == f"sqlite:///{example.parent / 'syncd.db'}"
    assert documented.storage.path == str(example.parent / "dam")


@pytest.mark.parametrize(
    "variable, value",
    [
        ("SYNCD_API__TIMEOUT_S", "nan"),
        ("SYNCD_SERVE__GRACE_S", "inf"),
        ("SYNCD_RELICENSE__PRICE", "-inf"),
    ],
)
def test_numbers_must_be_finite(variable, value):
    with pytest.raises(ConfigError):
        load(environ={variable: value}, search=False)


@pytest.mark.parametrize("token", ["abc€def", "two words", "tab\there"])
def test_tokens_must_be_printable_ascii(token):
    from syncd.config import require_token

    with pytest.raises(ConfigError):
        require_token(load(environ={"SHUTTERSTOCK_API_TOKEN": token}, search=False))


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg2://x@127.0.0.1/db", "mysql://x@h/db", "not a url"]
)
def test_unusable_database_urls_are_config_errors(url):
    from syncd.db.engine import check_url

    with pytest.raises(ConfigError):
        check_url(url)
