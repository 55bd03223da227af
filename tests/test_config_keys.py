"""The configuration keys of CONTRACT 3 beyond the core's: sizes, rates, dates, addresses, the
XMP naming check, and environment variables that look like syncd's but are no key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.config import ConfigError, Since, load, parse_size


def env_config(**variables: str):
    return load(environ=variables, search=False)


@pytest.mark.parametrize(
    "text, value",
    [
        ("16MiB", 16 << 20),
        ("5MiB", 5 << 20),
        ("1GiB", 1 << 30),
        ("20MB", 20_000_000),
        ("500KiB", 500 << 10),
        ("8M", 8 << 20),
        ("1.5GiB", 3 << 29),
        ("4096", 4096),
        (4096, 4096),
    ],
)
def test_sizes_take_binary_and_decimal_units(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "MiB", "-5MiB", "0", "5 parsecs", "1e3", True])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_defaults_of_the_new_keys():
    config = env_config()
    assert config.storage.multipart_threshold == 16 << 20
    assert config.storage.part_size == 16 << 20
    assert config.storage.xmp_sidecars == "off"
    assert config.storage.addressing_style == "auto"
    assert config.storage.create_bucket is False
    assert config.sync.bwlimit is None and config.sync.since is None
    assert config.sync.details is True
    assert config.relicense.daily_budget is None
    assert config.verify.rehash_after == 30 * 86400
    assert config.serve.metrics_address == ("127.0.0.1", 9469)


def test_bwlimit_off_or_a_rate():
    assert env_config(SYNCD_SYNC__BWLIMIT="off").sync.bwlimit is None
    assert env_config(SYNCD_SYNC__BWLIMIT="20MB").sync.bwlimit == 20_000_000


def test_since_is_a_date_a_date_time_or_now():
    midnight = datetime(2024, 3, 1, tzinfo=UTC)
    assert env_config(SYNCD_SYNC__SINCE="2024-03-01").sync.since == Since(moment=midnight)
    offset = env_config(SYNCD_SYNC__SINCE="2024-03-01T02:00:00+02:00").sync.since
    assert offset == Since(moment=midnight)
    assert env_config(SYNCD_SYNC__SINCE="now").sync.since == Since(now=True)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("SYNCD_SYNC__SINCE", "yesterday"),
        ("SYNCD_SYNC__BWLIMIT", "fast"),
        ("SYNCD_STORAGE__PART_SIZE", "1MiB"),  # below S3's 5 MiB
        ("SYNCD_STORAGE__XMP_SIDECARS", "both"),
        ("SYNCD_STORAGE__SSE", "rot13"),
        ("SYNCD_STORAGE__ADDRESSING_STYLE", "sideways"),
        ("SYNCD_SERVE__METRICS_ADDRESS", "9469"),
        ("SYNCD_SERVE__METRICS_ADDRESS", "127.0.0.1:99999"),
        ("SYNCD_RELICENSE__DAILY_BUDGET", "-1"),
        ("SYNCD_VERIFY__REHASH_AFTER", "monthly"),
    ],
)
def test_bad_new_values_name_their_key(variable, value):
    with pytest.raises(ConfigError) as caught:
        env_config(**{variable: value})
    section, _, name = variable[len("SYNCD_") :].lower().partition("__")
    assert caught.value.key == f"{section}.{name}"


def test_a_template_whose_xmp_names_collide_is_refused_only_with_replace():
    template = "{media_type}/{media_id}/file.{size}"
    assert env_config(SYNCD_STORAGE__KEY_TEMPLATE=template).storage.key_template == template
    with pytest.raises(ConfigError) as caught:
        env_config(SYNCD_STORAGE__KEY_TEMPLATE=template, SYNCD_STORAGE__XMP_SIDECARS="replace")
    assert caught.value.key == "storage.key_template"
    append = env_config(SYNCD_STORAGE__KEY_TEMPLATE=template, SYNCD_STORAGE__XMP_SIDECARS="append")
    assert append.storage.xmp_sidecars == "append"


@pytest.mark.parametrize(
    "variable, meant",
    [
        ("SYNCD_API_BASE_URL", "SYNCD_API__BASE_URL"),
        ("SYNCD_STORAGE_PATH", "SYNCD_STORAGE__PATH"),
        ("SYNCD_SYNC__CONCURENCY", "SYNCD_SYNC__CONCURRENCY"),
    ],
)
def test_a_variable_that_looks_like_a_key_names_the_key_it_probably_meant(variable, meant):
    with pytest.raises(ConfigError) as caught:
        env_config(**{variable: "x"})
    assert caught.value.key == variable
    assert f"did you mean {meant}" in str(caught.value)


def test_syncd_config_and_unrelated_variables_are_not_keys():
    assert env_config(SYNCD_CONFIG="", HOME="/root").sync.concurrency == 4
    with pytest.raises(ConfigError) as caught:
        env_config(SYNCD_WHATEVER="1")
    assert "SYNCD_<SECTION>__<KEY>" in str(caught.value)


@pytest.mark.parametrize("expression", ["0 3 * * 7", "0 3 * * 0", "*/15 * * * 1-5", "0 4 * * sun"])
def test_cron_schedules_are_read_with_crons_weekday_numbering(expression):
    assert env_config(SYNCD_JOBS__BACKFILL=expression).jobs.backfill.cron == expression


def test_a_bad_cron_schedule_names_its_key():
    with pytest.raises(ConfigError) as caught:
        env_config(SYNCD_JOBS__BACKFILL="0 3 * * 8")
    assert caught.value.key == "jobs.backfill"
