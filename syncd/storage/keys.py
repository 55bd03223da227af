"""Storage keys: the template of CONTRACT section 4, and the checks that keep every key inside
the storage root or prefix whatever the API sends."""

from __future__ import annotations

import posixpath
import re
import string
from urllib.parse import unquote, urlsplit

PLACEHOLDERS = ("media_type", "media_id", "license_id", "size", "format", "ext")
REQUIRED = ("media_type", "media_id", "size")
SIDECAR_NAME = "metadata.json"
XMP_SUFFIX = ".xmp"
XMP_STYLES = ("replace", "append")
QUARANTINE = "quarantine"
RESERVED_FIRST_SEGMENTS = (QUARANTINE,)

_SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SAFE_EXT = re.compile(r"\.[a-z0-9_-]{1,16}")


class UnsafeValue(ValueError):
    """A value from the API that cannot become part of a key."""


def check_value(name: str, value: object) -> str:
    """Letters, digits, ``_`` and ``-`` only: no separators, no dots, no traversal."""
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        raise UnsafeValue(
            f"{name} {value!r} is not a safe key part (letters, digits, _ and - only)"
        )
    return value


def extension_of(url: str) -> str:
    """The last suffix of the percent-decoded last segment of the URL's path, lower case, with
    its dot; ``.bin`` where there is none."""
    segment = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    stem, dot, suffix = segment.rpartition(".")
    if not dot or not stem or not suffix:
        return ".bin"
    ext = "." + suffix.lower()
    if not _SAFE_EXT.fullmatch(ext):
        raise UnsafeValue(f"file suffix {ext!r} of the download URL is not a safe key part")
    return ext


def check_template(template: str, xmp_sidecars: str | None = None) -> None:
    """Raises ValueError unless the template can only produce keys inside the root, each with
    an XMP sidecar name of its own under ``xmp_sidecars`` (None: whichever style may be
    configured)."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"is not a valid template ({exc})") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{name}}} (known: {', '.join(PLACEHOLDERS)})")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format spec or conversion")
        names.append(name)
    _check_separated(parsed)
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise ValueError(
            "must contain "
            + ", ".join("{" + n + "}" for n in missing)
            + " so that each asset and size has its own key"
        )
    sample = render(
        template,
        media_type="editorial/images",
        media_id="m1",
        license_id="l1",
        size="huge",
        format="jpg",
        ext=".jpg",
    )
    check_key(sample)
    if xmp_sidecars in (None, "replace"):
        _check_replace_names(template)


def _check_replace_names(template: str) -> None:
    """With ``replace``, a file's XMP name drops its last suffix: that suffix must not be
    where the asset or size is told apart (``{media_id}/file.{size}`` would give ``huge`` and
    ``small`` one ``file.xmp``)."""
    sample = dict(
        media_type="images", media_id="m1", license_id="l1", size="huge", format="jpg", ext=".jpg"
    )
    for name, other in (("media_type", "videos"), ("media_id", "m2"), ("size", "small")):
        one = render(template, **sample)
        two = render(template, **{**sample, name: other})
        if xmp_key(one, "replace") == xmp_key(two, "replace"):
            raise ValueError(
                f"{{{name}}} must not be the last suffix of the file name: with "
                "storage.xmp_sidecars = replace two files would share one XMP sidecar"
            )


def _check_separated(parsed: list[tuple[str, str | None, str | None, str | None]]) -> None:
    """Two placeholders must be parted by a '/' or a '.', which no value contains (except
    before {ext}, which starts with its dot): ``{media_id}-{size}`` would let asset ``1-a``
    size ``b`` and asset ``1`` size ``a-b`` share one key."""
    previous = None
    for literal, name, _spec, _conversion in parsed:
        if (
            previous is not None
            and name is not None
            and name != "ext"
            and "/" not in literal
            and "." not in literal
        ):
            raise ValueError(
                f"{{{previous}}} and {{{name}}} must be parted by '/' or '.' "
                "so that two assets can never share a key"
            )
        if name is not None:
            previous = name
        elif "/" in literal or "." in literal:
            previous = None


def render(
    template: str,
    *,
    media_type: str,
    media_id: str,
    license_id: str,
    size: str,
    format: str | None,
    ext: str,
) -> str:
    if format and "{format}" in template:
        check_value("format", format)
    return template.format(
        media_type=media_type,
        media_id=media_id,
        license_id=license_id,
        size=size,
        format=format or ext.lstrip("."),
        ext=ext,
    )


def check_object_key(key: str) -> str:
    """What every backend accepts as a key (files and sidecars alike): relative, plain
    segments, nothing hidden (partial data lives under hidden names), normalised."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise UnsafeValue(f"key {key!r} is not a relative path")
    # a segment that is empty or starts with a dot (".", "..", hidden names) is refused: what
    # is left is normalised
    if any(not s or s.startswith(".") for s in key.split("/")):
        raise UnsafeValue(f"key {key!r} has an empty, hidden or parent segment")
    return key


def check_key(key: str) -> str:
    """A relative key of plain segments: no empty, ``.``/``..`` or hidden segment, and no
    collision with a sidecar (``metadata.json``, any ``*.xmp``, in any letter case, for
    case-insensitive filesystems) or the quarantine folder."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise UnsafeValue(f"key {key!r} is not a relative path")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or segment.startswith("."):
            raise UnsafeValue(f"key {key!r} has an empty, hidden or parent segment")
    if posixpath.normpath(key) != key:
        raise UnsafeValue(f"key {key!r} is not normalised")
    name = segments[-1].lower()
    if name == SIDECAR_NAME:
        raise UnsafeValue(f"key {key!r} would overwrite a sidecar")
    if name.endswith(XMP_SUFFIX):
        raise UnsafeValue(f"key {key!r} ends in {XMP_SUFFIX}, the name of XMP sidecars")
    if segments[0] in RESERVED_FIRST_SEGMENTS:
        raise UnsafeValue(f"key {key!r} lies in the reserved folder {segments[0]}/")
    return key


def sidecar_key(media_type: str, media_id: str) -> str:
    return f"{media_type}/{check_value('media id', media_id)}/{SIDECAR_NAME}"


def xmp_key(file_key: str, style: str) -> str:
    """The XMP sidecar beside ``file_key``: ``replace`` puts ``.xmp`` in place of the last
    suffix (``huge.jpg`` -> ``huge.xmp``), ``append`` after the whole name (``huge.jpg.xmp``).
    No file key ends in ``.xmp`` (check_key), so no sidecar name is ever a file's key."""
    if style == "append":
        return file_key + XMP_SUFFIX
    if style == "replace":
        folder, name = posixpath.split(file_key)
        return posixpath.join(folder, posixpath.splitext(name)[0] + XMP_SUFFIX)
    raise ValueError(f"XMP sidecar style {style!r} has no key (known: {', '.join(XMP_STYLES)})")
