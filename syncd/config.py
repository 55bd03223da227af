"""Configuration: a TOML file, then ``SYNCD_<SECTION>__<KEY>`` overrides, validated at start.

Every key is declared once, as a dataclass field whose metadata holds its parser. A parser
takes the raw value (from TOML, or a string from the environment) and returns the typed value
or raises ValueError with what is wrong; the loader turns that into a ConfigError naming the key.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncd.errors import ConfigError

MEDIA_TYPES = ("images", "videos", "audio", "editorial/images", "editorial/videos")
ENV_PREFIX = "SYNCD_"
DEFAULT_CONFIG_PATH = Path("config/syncd.toml")


class Secret:
    """A string that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


# --- parsers: (raw value, came from the environment) -> typed value -------------------------

Parser = Callable[[Any, bool], Any]


def _string(raw: Any, from_env: bool) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, not {type(raw).__name__}")
    return raw


MIB = 1024 * 1024


def _optional_choice(*allowed: str) -> Parser:
    def parse(raw: Any, from_env: bool) -> str | None:
        value = _string(raw, from_env)
        if not value or value.lower() == "none":
            return None
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        return value

    return parse


def _optional_string(raw: Any, from_env: bool) -> str | None:
    value = _string(raw, from_env)
    return value or None


def _boolean(raw: Any, from_env: bool) -> bool:
    if from_env and isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"must be true or false, not {raw!r}")
    if not isinstance(raw, bool):
        raise ValueError(f"must be true or false, not {raw!r}")
    return raw


def _integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(raw: Any, from_env: bool) -> int:
        if from_env and isinstance(raw, str):
            try:
                raw = int(raw.strip())
            except ValueError:
                raise ValueError(f"must be a whole number, not {raw!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"must be a whole number, not {raw!r}")
        _check_range(raw, minimum, maximum)
        return raw

    return parse


def _number(minimum: float | None = None, maximum: float | None = None) -> Parser:
    def parse(raw: Any, from_env: bool) -> float:
        if from_env and isinstance(raw, str):
            try:
                raw = float(raw.strip())
            except ValueError:
                raise ValueError(f"must be a number, not {raw!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise ValueError(f"must be a finite number, not {raw!r}")
        _check_range(raw, minimum, maximum)
        return float(raw)

    return parse


def _check_range(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ValueError(f"must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {maximum}, not {value}")


def _choice(*allowed: str) -> Parser:
    def parse(raw: Any, from_env: bool) -> str:
        value = _string(raw, from_env)
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")
        return value

    return parse


def _media_list(raw: Any, from_env: bool) -> tuple[str, ...]:
    if from_env and isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ValueError("must be a list of media types")
    if not raw:
        raise ValueError(f"must name at least one of {', '.join(MEDIA_TYPES)}")
    for item in raw:
        if item not in MEDIA_TYPES:
            raise ValueError(f"unknown media type {item!r} (known: {', '.join(MEDIA_TYPES)})")
    if len(set(raw)) != len(raw):
        raise ValueError("names a media type twice")
    return tuple(item for item in MEDIA_TYPES if item in raw)


def _table(raw: Any, from_env: bool) -> dict[str, str]:
    if from_env and isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ValueError("must be a table")
    for name, value in raw.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"field {name!r} must be a string or a number")
    return {str(name): str(value) for name, value in raw.items()}


_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``30m``, ``6h``, ``1h30m``, ``3d`` -> seconds. Raises ValueError."""
    text = text.strip()
    pos, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"must be a duration like 30m, 6h or 3d, not {text!r}")
    if total <= 0:
        raise ValueError(f"must be longer than zero, not {text!r}")
    return total


def _duration(raw: Any, from_env: bool) -> int:
    return parse_duration(_string(raw, from_env))


@dataclass(frozen=True)
class Schedule:
    """When ``serve`` runs a job: every ``interval_s`` seconds, on a cron expression, or never."""

    interval_s: int | None = None
    cron: str | None = None

    @property
    def off(self) -> bool:
        return self.interval_s is None and self.cron is None


def _schedule(raw: Any, from_env: bool) -> Schedule:
    text = _string(raw, from_env).strip()
    if text == "off":
        return Schedule()
    if len(text.split()) == 5:
        from syncd.schedule import cron_trigger  # cron's weekday numbering: 0 and 7 are Sunday

        try:
            cron_trigger(text)
        except ValueError as exc:
            raise ValueError(f"is not a valid cron expression ({exc})") from None
        return Schedule(cron=text)
    try:
        return Schedule(interval_s=parse_duration(text))
    except ValueError:
        raise ValueError(
            f"must be a duration (15m), a five-field cron expression or off, not {text!r}"
        ) from None


def _country(raw: Any, from_env: bool) -> str:
    value = _string(raw, from_env)
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValueError(f"must be an ISO 3166 alpha-3 code such as USA, not {value!r}")
    return value


def _url(raw: Any, from_env: bool) -> str:
    value = _string(raw, from_env).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, not {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value


def _optional_url(raw: Any, from_env: bool) -> str | None:
    return _url(raw, from_env) if raw else None


def _secret(raw: Any, from_env: bool) -> Secret:
    return Secret(_string(raw, from_env))


def _key_template(raw: Any, from_env: bool) -> str:
    from syncd.storage.keys import check_template

    value = _string(raw, from_env)
    check_template(value, "off")  # the XMP names are checked against storage.xmp_sidecars
    return value


def _prefix(raw: Any, from_env: bool) -> str:
    value = _string(raw, from_env).strip("/")
    if value and any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError(f"must be a plain path of folder names, not {value!r}")
    return value


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|[KMGT]|B)?", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_size(raw: Any) -> int:
    """Bytes: a whole number, or a number with a unit (``16MiB``, ``20MB``, ``500KiB``; a
    bare ``K``/``M``/``G`` is binary, as in rclone). Raises ValueError."""
    if isinstance(raw, bool):
        raise ValueError(f"must be a size such as 16MiB, not {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str):
        match = _SIZE.fullmatch(raw.strip())
        if not match:
            raise ValueError(f"must be a size such as 16MiB or 20MB, not {raw!r}")
        number, unit = match.groups()
        value = int(float(number) * _SIZE_UNITS[(unit or "").lower()])
    else:
        raise ValueError(f"must be a size such as 16MiB, not {raw!r}")
    if value <= 0:
        raise ValueError(f"must be larger than zero, not {raw!r}")
    return value


def _size(minimum: int = 1, maximum: int | None = None) -> Parser:
    def parse(raw: Any, from_env: bool) -> int:
        value = parse_size(raw)
        _check_range(value, minimum, maximum)
        return value

    return parse


def parse_bwlimit(raw: Any) -> int | None:
    """Bytes per second over all transfers, or None for ``off``."""
    if isinstance(raw, str) and raw.strip().lower() in ("off", "0", ""):
        return None
    if raw == 0:
        return None
    return parse_size(raw)


def _bwlimit(raw: Any, from_env: bool) -> int | None:
    return parse_bwlimit(raw)


def _optional_integer(minimum: int | None = None) -> Parser:
    inner = _integer(minimum)

    def parse(raw: Any, from_env: bool) -> int | None:
        if isinstance(raw, str) and raw.strip().lower() in ("", "none", "off"):
            return None
        result: int = inner(raw, from_env)
        return result

    return parse


@dataclass(frozen=True)
class Since:
    """``sync.since``: how far back a stream's first catch-up reaches."""

    moment: datetime | None = None  # licenses older than this are left to backfill
    now: bool = False  # future licenses only


def parse_moment(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 date-time (UTC when it names no offset)."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = datetime.fromisoformat(text)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"must be a date (YYYY-MM-DD) or an ISO 8601 date-time, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _since(raw: Any, from_env: bool) -> Since | None:
    if isinstance(raw, datetime):
        moment = raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
        return Since(moment=moment.astimezone(timezone.utc))
    if isinstance(raw, date):
        return Since(moment=datetime(raw.year, raw.month, raw.day, tzinfo=timezone.utc))
    text = _string(raw, from_env).strip()
    if not text:
        return None
    if text.lower() == "now":
        return Since(now=True)
    return Since(moment=parse_moment(text))


def _address(raw: Any, from_env: bool) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:9469`` for IPv6), or None for ``off``."""
    text = _string(raw, from_env).strip()
    if text.lower() == "off":
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be host:port (127.0.0.1:9469) or off, not {text!r}")
    return host, int(port)


def key(default: Any, parse: Parser, doc: str = "") -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc})


# --- the sections -------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiConfig:
    base_url: str = key("https://api.shutterstock.com", _url)
    token: Secret = key(None, _secret)
    allow_http: bool = key(False, _boolean)
    timeout_s: float = key(60.0, _number(1, 3600))
    max_retries: int = key(5, _integer(0, 20))


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = key("sqlite:///syncd.db", _string)


@dataclass(frozen=True)
class StorageConfig:
    backend: str = key("filesystem", _choice("filesystem", "s3"))
    path: str = key("./dam", _string)
    bucket: str | None = key(None, _optional_string)
    prefix: str = key("", _prefix)
    endpoint_url: str | None = key(None, _optional_url)
    region: str | None = key(None, _optional_string)
    key_template: str = key("{media_type}/{media_id}/{size}{ext}", _key_template)
    addressing_style: str = key("auto", _choice("auto", "path", "virtual"))
    storage_class: str | None = key(None, _optional_string)
    sse: str | None = key(None, _optional_choice("AES256", "aws:kms"))
    sse_kms_key_id: str | None = key(None, _optional_string)
    create_bucket: bool = key(False, _boolean)
    multipart_threshold: int = key(16 * MIB, _size(5 * MIB, 5 * 1024**4))
    part_size: int = key(16 * MIB, _size(5 * MIB, 5 * 1024**3))
    xmp_sidecars: str = key("off", _choice("off", "replace", "append"))


@dataclass(frozen=True)
class SyncConfig:
    media: tuple[str, ...] = key(MEDIA_TYPES, _media_list)
    concurrency: int = key(4, _integer(1, 64))
    team_history: bool = key(False, _boolean)
    relicense: bool = key(False, _boolean)
    relicense_budget: int = key(0, _integer(0))
    bwlimit: int | None = key(None, _bwlimit)
    since: Since | None = key(None, _since)
    details: bool = key(True, _boolean)


@dataclass(frozen=True)
class UpdatesConfig:
    enabled: bool = key(True, _boolean)
    on_deletion: str = key("keep", _choice("keep", "quarantine", "delete"))
    lookback: int = key(86400, _duration)
    country: str = key("USA", _country)


@dataclass(frozen=True)
class RelicenseConfig:
    subscription_id: str | None = key(None, _optional_string)
    customer_id: str | None = key(None, _optional_string)
    price: float = key(0.0, _number(0))
    metadata: dict[str, Any] = key(None, _table)
    editorial_license: str | None = key(None, _optional_string)
    audio_license: str = key("audio_platform", _string)
    daily_budget: int | None = key(None, _optional_integer(0))


@dataclass(frozen=True)
class VerifyConfig:
    rehash_after: int = key(30 * 86400, _duration)


@dataclass(frozen=True)
class JobsConfig:
    catch_up: Schedule = key(Schedule(interval_s=15 * 60), _schedule)
    updates: Schedule = key(Schedule(interval_s=3600), _schedule)
    verify: Schedule = key(Schedule(interval_s=86400), _schedule)
    backfill: Schedule = key(Schedule(interval_s=7 * 86400), _schedule)


@dataclass(frozen=True)
class ServeConfig:
    grace_s: float = key(10.0, _number(0, 3600))
    metrics_address: tuple[str, int] | None = key(("127.0.0.1", 9469), _address)


@dataclass(frozen=True)
class Config:
    api: ApiConfig
    database: DatabaseConfig
    storage: StorageConfig
    sync: SyncConfig
    updates: UpdatesConfig
    relicense: RelicenseConfig
    verify: VerifyConfig
    jobs: JobsConfig
    serve: ServeConfig
    source: str = "defaults"
    # where each key's value came from: "default", "file (PATH)", "environment (NAME)"
    origins: dict[str, str] = field(default_factory=dict, compare=False)


_SECTION_CLASSES = {
    "api": ApiConfig,
    "database": DatabaseConfig,
    "storage": StorageConfig,
    "sync": SyncConfig,
    "updates": UpdatesConfig,
    "relicense": RelicenseConfig,
    "verify": VerifyConfig,
    "jobs": JobsConfig,
    "serve": ServeConfig,
}


def env_name(section: str, name: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}__{name.upper()}"


def resolve_path(cli_path: str | None, environ: dict[str, str]) -> Path | None:
    """--config, else $SYNCD_CONFIG, else ./config/syncd.toml when it exists."""
    if cli_path:
        return Path(cli_path)
    if environ.get("SYNCD_CONFIG"):
        return Path(environ["SYNCD_CONFIG"])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load(
    cli_path: str | None = None, environ: dict[str, str] | None = None, search: bool = True
) -> Config:
    """The configuration in force. ``search=False``: only ``environ``, no file."""
    environ = dict(os.environ if environ is None else environ)
    path = resolve_path(cli_path, environ) if search else None
    document = _read_toml(path) if path else {}
    _reject_unknown(document, environ)

    sections: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for section, cls in _SECTION_CLASSES.items():
        values = {}
        table = document.get(section, {})
        for f in fields(cls):
            parse = f.metadata["parse"]
            name = f"{section}.{f.name}"
            env_key = env_name(section, f.name)
            origins[name] = "default"
            try:
                if env_key in environ:
                    values[f.name] = parse(environ[env_key], True)
                    origins[name] = f"environment ({env_key})"
                elif f.name in table:
                    values[f.name] = parse(table[f.name], False)
                    origins[name] = f"file ({path})"
            except ValueError as exc:
                raise ConfigError(name, str(exc)) from None
        sections[section] = cls(**values)
    config = Config(**sections, source=str(path) if path else "defaults")
    config = _fill_derived(config, environ)
    if path is not None:
        config = _relative_to_file(config, path.absolute().parent, origins)
    if origins["api.token"] == "default" and config.api.token:
        origins["api.token"] = "environment (SHUTTERSTOCK_API_TOKEN)"
    from syncd.credentials import TOKEN_CREDENTIAL, token_from_credentials

    credential = token_from_credentials()
    if credential is not None:  # systemd's LoadCredential= wins over the file and environment
        config = replace(config, api=replace(config.api, token=Secret(credential)))
        origins["api.token"] = f"credential ($CREDENTIALS_DIRECTORY/{TOKEN_CREDENTIAL})"
    config = replace(config, origins=origins)
    _check_cross_keys(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file to read

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("--config", f"file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"cannot read {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{str(path)!r} is not valid TOML: {exc}") from None


def _reject_unknown(document: dict[str, Any], environ: dict[str, str]) -> None:
    for section, table in document.items():
        if section not in _SECTION_CLASSES:
            raise ConfigError(section, "unknown section")
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table")
        known = {f.name for f in fields(_SECTION_CLASSES[section])}
        for name in table:
            if name not in known:
                raise ConfigError(f"{section}.{name}", "unknown key")
    names = {
        env_name(section, f.name): f"{section}.{f.name}"
        for section, cls in _SECTION_CLASSES.items()
        for f in fields(cls)
    }
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable == "SYNCD_CONFIG" or variable in names:
            continue
        raise ConfigError(variable, f"not a configuration variable{_did_you_mean(variable, names)}")


def _did_you_mean(variable: str, names: dict[str, str]) -> str:
    """The key a mistyped variable probably meant (``SYNCD_API_BASE_URL``: ``api.base_url``)."""
    import difflib

    folded = {name.replace("_", ""): name for name in names}
    hit = folded.get(variable.replace("_", ""))
    if hit is None:
        close = difflib.get_close_matches(variable, list(names), n=1, cutoff=0.8)
        hit = close[0] if close else None
    if hit is None:
        return " (keys are SYNCD_<SECTION>__<KEY>, with two underscores)"
    return f"; did you mean {hit} (the key {names[hit]})?"


def _relative_to_file(config: Config, folder: Path, origins: dict[str, str]) -> Config:
    """Relative paths written in a configuration file (``storage.path``, the file of a relative
    ``sqlite:///`` URL) are relative to that file's folder, wherever syncd is started from;
    from the environment or the defaults, to the working folder."""
    from dataclasses import replace

    storage, database = config.storage, config.database
    if origins["storage.path"].startswith("file") and not Path(storage.path).is_absolute():
        storage = replace(storage, path=str(folder / storage.path))
    if origins["database.url"].startswith("file"):
        prefix = "sqlite:///"
        url = database.url
        if url.startswith(prefix) and url[len(prefix) :] not in ("", ":memory:"):
            relative = url[len(prefix) :]
            if not relative.startswith("/"):
                database = replace(database, url=prefix + str(folder / relative))
    return replace(config, storage=storage, database=database)


def _fill_derived(config: Config, environ: dict[str, str]) -> Config:
    from dataclasses import replace

    api = config.api
    if api.token is None:
        api = replace(api, token=Secret(environ.get("SHUTTERSTOCK_API_TOKEN", "")))
    relicense = config.relicense
    if relicense.metadata is None:
        relicense = replace(relicense, metadata={})
    return replace(config, api=api, relicense=relicense)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url_allowed(url: str, allow_http: bool) -> None:
    """https, or http to a loopback address, unless ``api.allow_http``. Raises ValueError."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (allow_http or is_loopback(parts.hostname)):
        return
    raise ValueError(f"{parts.scheme}:// is not allowed (https only, unless api.allow_http)")


def _check_cross_keys(config: Config) -> None:
    try:
        check_url_allowed(config.api.base_url, config.api.allow_http)
    except ValueError as exc:
        raise ConfigError("api.base_url", str(exc)) from None
    if config.storage.xmp_sidecars != "off":
        from syncd.storage.keys import check_template

        try:
            check_template(config.storage.key_template, config.storage.xmp_sidecars)
        except ValueError as exc:
            raise ConfigError("storage.key_template", str(exc)) from None
    if config.storage.backend == "s3" and not config.storage.bucket:
        raise ConfigError("storage.bucket", "must be set when storage.backend is s3")
    if config.storage.backend == "filesystem" and not config.storage.path.strip():
        raise ConfigError("storage.path", "must not be empty")


def shown(value: Any) -> Any:
    """A setting as ``syncd config show`` prints it (JSON-able; the token redacted)."""
    if isinstance(value, Secret):
        return "***" if value else None
    if isinstance(value, Schedule):
        if value.off:
            return "off"
        return value.cron if value.cron else f"{value.interval_s}s"
    if isinstance(value, Since):
        return "now" if value.now else value.moment.isoformat() if value.moment else None
    if isinstance(value, tuple):
        if len(value) == 2 and isinstance(value[1], int) and not isinstance(value[1], bool):
            return f"{value[0]}:{value[1]}"
        return list(value)
    return value


def settings(config: Config) -> list[tuple[str, Any, str]]:
    """Every key with its effective value and where it came from."""
    rows = []
    for section in _SECTION_CLASSES:
        values = getattr(config, section)
        for f in fields(values):
            name = f"{section}.{f.name}"
            rows.append((name, shown(getattr(values, f.name)), config.origins.get(name, "default")))
    return rows


def require_token(config: Config) -> str:
    token = config.api.token.reveal() if config.api.token else ""
    if not token:
        raise ConfigError(
            "api.token", "not set: set SHUTTERSTOCK_API_TOKEN or api.token in the config file"
        )
    if not token.isascii() or not token.isprintable() or any(ch.isspace() for ch in token):
        raise ConfigError("api.token", "must be printable ASCII without white space")
    return token
