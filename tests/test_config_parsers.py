"""The configuration parsers one by one, with plain values: what each accepts, the exact value
it returns and the exact words of each refusal; then the loader's origins, the cross-key
checks and what ``config show`` prints."""

from __future__ import annotations

import time
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from syncd import config as c
from syncd.config import ConfigError, Schedule, Secret, Since, load

MIB = 1024 * 1024
MEDIA = "images, videos, audio, editorial/images, editorial/videos"


def refusal(parse, raw, from_env=False):
    with pytest.raises(ValueError) as caught:
        parse(raw, from_env)
    return str(caught.value)


def load_error(**environ):
    with pytest.raises(ConfigError) as caught:
        load(environ=environ, search=False)
    return str(caught.value)


@pytest.fixture
def new_york(monkeypatch):
    """A local zone that is not UTC, so that a naive or local datetime shows itself."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- scalar parsers ----------------------------------------------------------------------


def test_string_names_the_wrong_type():
    assert c._string("x", False) == "x"
    assert refusal(c._string, 5) == "must be a string, not int"


@pytest.mark.parametrize(
    "raw, value", [("", None), ("None", None), ("none", None), ("AES256", "AES256")]
)
def test_optional_choice(raw, value):
    assert c._optional_choice("AES256", "aws:kms")(raw, False) == value


def test_optional_choice_refusals():
    parse = c._optional_choice("AES256", "aws:kms")
    assert refusal(parse, "aes") == "must be one of AES256, aws:kms, not 'aes'"
    assert refusal(parse, 5) == "must be a string, not int"


def test_choice():
    parse = c._choice("keep", "quarantine", "delete")
    assert parse("quarantine", False) == "quarantine"
    assert refusal(parse, "drop") == "must be one of keep, quarantine, delete, not 'drop'"
    assert refusal(parse, None) == "must be a string, not NoneType"


def test_optional_string():
    assert c._optional_string("", False) is None
    assert c._optional_string("eu-west-1", False) == "eu-west-1"
    assert refusal(c._optional_string, 1) == "must be a string, not int"


@pytest.mark.parametrize("raw", ["true", " TRUE ", "1", "yes", "Yes", "on", "ON"])
def test_boolean_from_the_environment_true(raw):
    assert c._boolean(raw, True) is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "NO", "off", " Off "])
def test_boolean_from_the_environment_false(raw):
    assert c._boolean(raw, True) is False


def test_boolean_refusals_and_file_values():
    assert c._boolean(True, False) is True
    assert c._boolean(False, False) is False
    assert refusal(c._boolean, "maybe", True) == "must be true or false, not 'maybe'"
    assert refusal(c._boolean, "true", False) == "must be true or false, not 'true'"
    assert refusal(c._boolean, 1, False) == "must be true or false, not 1"


def test_integer():
    parse = c._integer(0, 20)
    assert parse(" 7 ", True) == 7
    assert parse(0, False) == 0
    assert parse(20, False) == 20
    assert refusal(parse, "x", True) == "must be a whole number, not 'x'"
    assert refusal(parse, "7", False) == "must be a whole number, not '7'"
    assert refusal(parse, True) == "must be a whole number, not True"
    assert refusal(parse, 3.0) == "must be a whole number, not 3.0"
    assert refusal(parse, 21) == "must be at most 20, not 21"
    assert refusal(parse, -1) == "must be at least 0, not -1"
    assert refusal(parse, "-1", True) == "must be at least 0, not -1"


def test_number():
    parse = c._number(1, 3600)
    assert parse(" 2.5 ", True) == 2.5
    value = parse(5, False)
    assert value == 5.0 and isinstance(value, float)
    assert parse(3600, False) == 3600.0
    assert refusal(parse, "x", True) == "must be a number, not 'x'"
    assert refusal(parse, "2", False) == "must be a finite number, not '2'"
    assert refusal(parse, True) == "must be a finite number, not True"
    assert refusal(parse, float("inf")) == "must be a finite number, not inf"
    assert refusal(parse, "nan", True) == "must be a finite number, not nan"
    assert refusal(parse, 0.5) == "must be at least 1, not 0.5"
    assert refusal(parse, 3601) == "must be at most 3600, not 3601"
    assert refusal(parse, "3601", True) == "must be at most 3600, not 3601.0"


def test_country():
    assert c._country("DEU", False) == "DEU"
    assert refusal(c._country, "usa") == "must be an ISO 3166 alpha-3 code such as USA, not 'usa'"


def test_url():
    assert c._url("https://api.example.com/", False) == "https://api.example.com"
    assert c._url("http://127.0.0.1:8080/v2//", False) == "http://127.0.0.1:8080/v2"
    assert c._url("https://a.example/X/", False) == "https://a.example/X"
    assert refusal(c._url, "ftp://x.example") == "must be an http(s) URL, not 'ftp://x.example'"
    assert refusal(c._url, "https://") == "must be an http(s) URL, not 'https:'"
    assert refusal(c._url, "https://a.example/?q=1") == "must not have a query or fragment"
    assert refusal(c._url, "https://a.example/#top") == "must not have a query or fragment"


def test_optional_url():
    assert c._optional_url("", False) is None
    assert c._optional_url("http://127.0.0.1:9000/", True) == "http://127.0.0.1:9000"
    assert refusal(c._optional_url, "s3.example") == "must be an http(s) URL, not 's3.example'"


def test_secret():
    secret = c._secret("tok", False)
    assert isinstance(secret, Secret) and secret.reveal() == "tok"
    assert refusal(c._secret, 5) == "must be a string, not int"
    assert repr(Secret("tok")) == "Secret('***')" and str(Secret("tok")) == "Secret('***')"
    assert bool(Secret("tok")) is True and bool(Secret("")) is False


def test_key_template_leaves_the_xmp_check_to_the_cross_key_check():
    template = "{media_type}/{media_id}/file.{size}"
    assert c._key_template(template, False) == template
    assert refusal(c._key_template, "{media_id}/{size}") == (
        "must contain {media_type} so that each asset and size has its own key"
    )


@pytest.mark.parametrize(
    "raw, value", [("", ""), ("/dam/", "dam"), ("a/b", "a/b"), ("//x//", "x"), ("/X/", "X")]
)
def test_prefix(raw, value):
    assert c._prefix(raw, False) == value


@pytest.mark.parametrize("raw", ["a//b", "a/./b", "a/../b", "../a"])
def test_prefix_refusals(raw):
    assert refusal(c._prefix, raw) == f"must be a plain path of folder names, not {raw!r}"


# --- durations, schedules, sizes, rates --------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds", [("1s", 1), ("30m", 1800), ("1h30m", 5400), ("3d", 259200)]
)
def test_parse_duration(text, seconds):
    assert c.parse_duration(text) == seconds
    assert c._duration(text, False) == seconds


def test_parse_duration_refusals():
    assert refusal(c._duration, "0m") == "must be longer than zero, not '0m'"
    assert refusal(c._duration, "soon") == "must be a duration like 30m, 6h or 3d, not 'soon'"
    assert refusal(c._duration, 30) == "must be a string, not int"


def test_schedule():
    assert c._schedule(" off ", False) == Schedule()
    assert c._schedule("15m", False) == Schedule(interval_s=900)
    assert c._schedule("*/5 * * * *", False) == Schedule(cron="*/5 * * * *")
    bad_cron = refusal(c._schedule, "61 * * * *")
    assert bad_cron.startswith("is not a valid cron expression (") and "61" in bad_cron
    assert refusal(c._schedule, "soon") == (
        "must be a duration (15m), a five-field cron expression or off, not 'soon'"
    )


@pytest.mark.parametrize(
    "raw, problem",
    [
        (True, "must be a size such as 16MiB, not True"),
        (1.5, "must be a size such as 16MiB, not 1.5"),
        ("lots", "must be a size such as 16MiB or 20MB, not 'lots'"),
        (0, "must be larger than zero, not 0"),
        ("0.5", "must be larger than zero, not '0.5'"),
    ],
)
def test_parse_size_refusals(raw, problem):
    with pytest.raises(ValueError) as caught:
        c.parse_size(raw)
    assert str(caught.value) == problem


def test_size_ranges():
    assert c.parse_size(1) == 1
    assert c._size()("1", False) == 1
    parse = c._size(5 * MIB, 5 * 1024**4)
    assert parse("16MiB", False) == 16 * MIB
    assert parse(5 * MIB, False) == 5 * MIB
    assert refusal(parse, "4MiB") == "must be at least 5242880, not 4194304"
    assert refusal(parse, "6TiB") == "must be at most 5497558138880, not 6597069766656"


@pytest.mark.parametrize("raw", ["off", " OFF ", "0", "", 0])
def test_bwlimit_off(raw):
    assert c._bwlimit(raw, True) is None


def test_bwlimit_rate():
    assert c.parse_bwlimit(1) == 1
    assert c.parse_bwlimit("20MB") == 20_000_000


@pytest.mark.parametrize("raw", ["", " None ", "OFF", "off", "none"])
def test_optional_integer_off(raw):
    assert c._optional_integer(0)(raw, True) is None


def test_optional_integer():
    parse = c._optional_integer(0)
    assert parse("5", True) == 5
    assert parse(5, False) == 5
    assert refusal(parse, -1) == "must be at least 0, not -1"
    assert refusal(parse, "x", True) == "must be a whole number, not 'x'"


# --- lists and tables --------------------------------------------------------------------


def test_media_list():
    assert c._media_list(" videos, images ,", True) == ("images", "videos")
    assert c._media_list(["editorial/videos", "audio"], False) == ("audio", "editorial/videos")
    assert refusal(c._media_list, "images", False) == "must be a list of media types"
    assert refusal(c._media_list, [1]) == "must be a list of media types"
    assert refusal(c._media_list, []) == f"must name at least one of {MEDIA}"
    assert refusal(c._media_list, " , ", True) == f"must name at least one of {MEDIA}"
    assert refusal(c._media_list, ["imagez"]) == f"unknown media type 'imagez' (known: {MEDIA})"
    assert refusal(c._media_list, ["audio", "audio"]) == "names a media type twice"


def test_table():
    assert c._table('{"a": 1, "b": "x"}', True) == {"a": "1", "b": "x"}
    assert c._table({"a": 1.5}, False) == {"a": "1.5"}
    assert refusal(c._table, "[", True) == "must be a JSON object (Expecting value)"
    assert refusal(c._table, '{"a": 1}', False) == "must be a table"
    assert refusal(c._table, "[1]", True) == "must be a table"
    assert refusal(c._table, {"a": True}) == "field 'a' must be a string or a number"
    assert refusal(c._table, {"a": [1]}) == "field 'a' must be a string or a number"


# --- moments and addresses ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, moment",
    [
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01t12:00:00z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T12:00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T12:00:00+02:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_moment_is_utc_whatever_the_local_zone(new_york, text, moment):
    parsed = c.parse_moment(text)
    assert parsed == moment and parsed.utcoffset() == timedelta(0)


def test_parse_moment_refusal():
    with pytest.raises(ValueError) as caught:
        c.parse_moment("yesterday")
    assert str(caught.value) == (
        "must be a date (YYYY-MM-DD) or an ISO 8601 date-time, not 'yesterday'"
    )


def test_since_from_toml_values_is_utc_whatever_the_local_zone(new_york):
    plus_two = timezone(timedelta(hours=2))
    for raw, moment in [
        (datetime(2024, 3, 1, 12), datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (datetime(2024, 3, 1, 12, tzinfo=plus_two), datetime(2024, 3, 1, 10, tzinfo=UTC)),
        (date(2024, 3, 1), datetime(2024, 3, 1, tzinfo=UTC)),
    ]:
        since = c._since(raw, False)
        assert since == Since(moment=moment)
        assert since.moment.utcoffset() == timedelta(0)


def test_since_from_text():
    assert c._since(" ", True) is None
    assert c._since("NOW", True) == Since(now=True)
    assert c._since("2024-03-01", True) == Since(moment=datetime(2024, 3, 1, tzinfo=UTC))
    assert refusal(c._since, 5) == "must be a string, not int"


@pytest.mark.parametrize(
    "raw, address",
    [
        ("127.0.0.1:9469", ("127.0.0.1", 9469)),
        (" [::1]:9469 ", ("::1", 9469)),
        ("XBOX:1", ("XBOX", 1)),
        ("h:65535", ("h", 65535)),
        ("OFF", None),
    ],
)
def test_address(raw, address):
    assert c._address(raw, False) == address


@pytest.mark.parametrize("raw", ["9469", ":9469", "h:x", "h:0", "h:65536", "[]:80"])
def test_address_refusals(raw):
    assert refusal(c._address, raw) == (
        f"must be host:port (127.0.0.1:9469) or off, not {raw.strip()!r}"
    )


def test_loopback_hosts():
    assert [c.is_loopback(h) for h in (None, "", "localhost", "127.0.0.2", "::1")] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert [c.is_loopback(h) for h in ("LOCALHOST", "example.com", "10.0.0.1")] == [False] * 3


def test_plain_http_is_refused_beyond_loopback():
    c.check_url_allowed("http://localhost:8080", allow_http=False)
    c.check_url_allowed("http://example.com", allow_http=True)
    with pytest.raises(ValueError) as caught:
        c.check_url_allowed("http://example.com", allow_http=False)
    assert str(caught.value) == "http:// is not allowed (https only, unless api.allow_http)"


# --- the loader: origins, unknown keys, cross-key checks ---------------------------------


def test_a_key_is_a_field_with_its_default_parser_and_doc():
    declared = c.key(5, c._boolean)
    assert declared.default == 5
    assert dict(declared.metadata) == {"parse": c._boolean, "doc": ""}
    assert dict(c.key(None, c._string, "why").metadata) == {"parse": c._string, "doc": "why"}


def test_origins_say_where_each_value_came_from(tmp_path):
    path = tmp_path / "syncd.toml"
    path.write_text('[sync]\nconcurrency = 8\n[api]\ntoken = "from-file"\n')
    config = load(str(path), environ={"SYNCD_SYNC__TEAM_HISTORY": "yes"})
    assert config.source == str(path)
    assert config.origins["sync.concurrency"] == f"file ({path})"
    assert config.origins["sync.team_history"] == "environment (SYNCD_SYNC__TEAM_HISTORY)"
    assert config.origins["sync.relicense"] == "default"
    assert config.origins["api.token"] == f"file ({path})"
    assert config.sync.concurrency == 8 and config.sync.team_history is True


def test_the_token_from_the_environment_has_that_origin():
    config = load(environ={"SHUTTERSTOCK_API_TOKEN": "t0k"}, search=False)
    assert config.source == "defaults"
    assert config.origins["api.token"] == "environment (SHUTTERSTOCK_API_TOKEN)"
    empty = load(environ={}, search=False)
    assert empty.origins["api.token"] == "default"
    assert empty.api.token.reveal() == "" and not empty.api.token


def test_load_reads_the_process_environment_when_given_none(monkeypatch):
    monkeypatch.setenv("SYNCD_SYNC__CONCURRENCY", "7")
    assert load(search=False).sync.concurrency == 7


def test_syncd_config_is_read_only_when_searching(tmp_path):
    path = tmp_path / "syncd.toml"
    path.write_text("[sync]\nconcurrency = 3\n")
    assert load(environ={"SYNCD_CONFIG": str(path)}).sync.concurrency == 3
    missing = str(tmp_path / "missing.toml")
    assert load(environ={"SYNCD_CONFIG": missing}, search=False).sync.concurrency == 4


def test_resolve_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert c.resolve_path("x.toml", {"SYNCD_CONFIG": "y.toml"}) == Path("x.toml")
    assert c.resolve_path(None, {"SYNCD_CONFIG": "y.toml"}) == Path("y.toml")
    assert c.resolve_path(None, {"SYNCD_CONFIG": ""}) is None
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "syncd.toml").write_text("")
    assert c.resolve_path(None, {}) == Path("config/syncd.toml")


def test_a_bad_value_names_its_key():
    assert (
        load_error(SYNCD_SYNC__CONCURRENCY="65") == "sync.concurrency: must be at most 64, not 65"
    )


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[bogus]\n", "bogus: unknown section"),
        ("api = 1\n", "api: must be a table"),
        ("[api]\nbogus = 1\n", "api.bogus: unknown key"),
    ],
)
def test_unknown_sections_and_keys_in_the_file(tmp_path, text, problem):
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(str(path), environ={})
    assert str(caught.value) == problem


def test_unreadable_files(tmp_path):
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError) as caught:
        load(str(missing), environ={})
    assert str(caught.value) == f"--config: file {str(missing)!r} does not exist"
    with pytest.raises(ConfigError) as caught:
        load(str(tmp_path), environ={})
    assert str(caught.value) == (
        f"--config: cannot read {str(tmp_path)!r}: [Errno 21] Is a directory: {str(tmp_path)!r}"
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[api\n")
    with pytest.raises(ConfigError) as caught:
        load(str(broken), environ={})
    assert str(caught.value).startswith(f"--config: {str(broken)!r} is not valid TOML: ")


def test_every_environment_variable_is_checked_and_syncd_config_is_allowed():
    assert load_error(HOME="/x", SYNCD_BOGUS="1") == (
        "SYNCD_BOGUS: not a configuration variable (keys are SYNCD_<SECTION>__<KEY>, with two "
        "underscores)"
    )
    assert load(environ={"SYNCD_CONFIG": "/nowhere.toml"}, search=False).source == "defaults"


def test_did_you_mean():
    names = {c.env_name("api", "base_url"): "api.base_url", c.env_name("jobs", "updates"): "x"}
    hint = "; did you mean SYNCD_API__BASE_URL (the key api.base_url)?"
    assert c._did_you_mean("SYNCD_A__P__I__B__A__S__E__U__R__L", names) == hint
    assert c._did_you_mean("SYNCD_API__BASEURL", names) == hint
    assert c._did_you_mean("SYNCD_API__BASE_URI", names) == hint  # close, not just folded
    assert c._did_you_mean("SYNCD_NOPE", names) == (
        " (keys are SYNCD_<SECTION>__<KEY>, with two underscores)"
    )


def test_relative_paths_in_a_file_are_relative_to_it_but_not_from_the_environment(tmp_path):
    path = tmp_path / "syncd.toml"
    path.write_text('[storage]\npath = "dam"\n[database]\nurl = "sqlite:///state/syncd.db"\n')
    config = load(str(path), environ={})
    assert config.storage.path == str(tmp_path / "dam")
    assert config.database.url == f"sqlite:///{tmp_path / 'state' / 'syncd.db'}"
    config = load(str(path), environ={"SYNCD_STORAGE__PATH": "dam"})
    assert config.storage.path == "dam"


@pytest.mark.parametrize(
    "url", ["sqlite:///:memory:", "sqlite:///", "sqlite:////abs/syncd.db", "postgresql://h/db"]
)
def test_database_urls_that_name_no_relative_file_are_kept(tmp_path, url):
    path = tmp_path / "syncd.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    assert load(str(path), environ={}).database.url == url


def test_cross_key_checks():
    assert load_error(SYNCD_API__BASE_URL="http://example.com") == (
        "api.base_url: http:// is not allowed (https only, unless api.allow_http)"
    )
    allowed = load(
        environ={"SYNCD_API__BASE_URL": "http://example.com", "SYNCD_API__ALLOW_HTTP": "1"},
        search=False,
    )
    assert allowed.api.base_url == "http://example.com"
    assert load_error(
        SYNCD_STORAGE__KEY_TEMPLATE="{media_type}/{media_id}/file.{size}",
        SYNCD_STORAGE__XMP_SIDECARS="replace",
    ) == (
        "storage.key_template: {size} must not be the last suffix of the file name: with "
        "storage.xmp_sidecars = replace two files would share one XMP sidecar"
    )
    assert load_error(SYNCD_STORAGE__BACKEND="s3") == (
        "storage.bucket: must be set when storage.backend is s3"
    )
    assert load_error(SYNCD_STORAGE__PATH=" ") == "storage.path: must not be empty"
    s3 = load(
        environ={
            "SYNCD_STORAGE__BACKEND": "s3",
            "SYNCD_STORAGE__BUCKET": "b",
            "SYNCD_STORAGE__PATH": " ",
        },
        search=False,
    )
    assert s3.storage.bucket == "b"


# --- the token and config show -----------------------------------------------------------


def test_require_token():
    def with_token(token):
        config = load(environ={}, search=False)
        return replace(config, api=replace(config.api, token=token))

    assert c.require_token(with_token(Secret("t0k-1"))) == "t0k-1"
    missing = "api.token: not set: set SHUTTERSTOCK_API_TOKEN or api.token in the config file"
    for token in (None, Secret("")):
        with pytest.raises(ConfigError) as caught:
            c.require_token(with_token(token))
        assert str(caught.value) == missing
    for bad in ("a b", "tök", "a\x07"):
        with pytest.raises(ConfigError) as caught:
            c.require_token(with_token(Secret(bad)))
        assert str(caught.value) == "api.token: must be printable ASCII without white space"


@pytest.mark.parametrize(
    "value, shown",
    [
        (Secret("x"), "***"),
        (Secret(""), None),
        (Schedule(), "off"),
        (Schedule(cron="0 * * * *"), "0 * * * *"),
        (Schedule(interval_s=900), "900s"),
        (Since(now=True), "now"),
        (Since(moment=datetime(2024, 3, 1, tzinfo=UTC)), "2024-03-01T00:00:00+00:00"),
        (Since(), None),
        (("127.0.0.1", 9469), "127.0.0.1:9469"),
        (("images", "videos"), ["images", "videos"]),
        (("a", True), ["a", True]),
        (("a", 1, 2), ["a", 1, 2]),
        (("images",), ["images"]),
        (5, 5),
    ],
)
def test_shown(value, shown):
    assert c.shown(value) == shown


def test_settings_list_every_key_in_order_with_its_origin():
    config = load(environ={"SHUTTERSTOCK_API_TOKEN": "t0k"}, search=False)
    rows = c.settings(config)
    assert len(rows) == sum(len(fields(cls)) for cls in c._SECTION_CLASSES.values())
    assert rows[0] == ("api.base_url", "https://api.shutterstock.com", "default")
    assert rows[1] == ("api.token", "***", "environment (SHUTTERSTOCK_API_TOKEN)")
    assert ("serve.metrics_address", "127.0.0.1:9469", "default") in rows
    assert c.settings(replace(config, origins={}))[1] == ("api.token", "***", "default")
