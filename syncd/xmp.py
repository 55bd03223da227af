"""XMP sidecars (CONTRACT section 4): one XMP packet per stored file, built from the asset's
licenses and details, and the key it is stored under (``storage.xmp_sidecars``).

The packet is built with ElementTree, never by pasting API text into markup: the serializer
escapes ``<``, ``&`` and ``>``; characters XML 1.0 cannot carry are dropped first. The same
input always gives the same bytes, so a hash tells whether a sidecar must be rewritten."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from syncd.storage.keys import xmp_key

__all__ = ["NAMESPACES", "xml_text", "xmp_key", "xmp_packet"]

NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "xmpDM": "http://ns.adobe.com/xmp/1.0/DynamicMedia/",
}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
LICENSOR_NAME = "Shutterstock"
LICENSOR_URL = "https://www.shutterstock.com"
TIMED_MEDIA = frozenset({"audio", "videos", "editorial/videos"})

for _prefix, _uri in NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)

# everything outside XML 1.0's Char production: C0 controls but tab, LF and CR, lone
# surrogates, U+FFFE and U+FFFF
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    """The value without the characters an XML 1.0 document cannot hold."""
    return _NOT_XML.sub("", value)


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NAMESPACES[prefix]}}}{local}"


def _sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(
        parent, _q(name), {_q(k.replace("_", ":", 1)): v for k, v in attrs.items()}
    )
    if text is not None:
        element.text = text
    return element


def _text(value: Any) -> str | None:
    """A non-empty string from the API, cleaned; anything else is absent."""
    if not isinstance(value, str):
        return None
    cleaned = xml_text(value)
    return cleaned if cleaned.strip() else None


def _texts(values: Any) -> list[str]:
    if not isinstance(values, list):
        return []
    return [t for t in (_text(v) for v in values) if t is not None]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _number(value: Any) -> Decimal | None:
    """A finite, non-negative number from the API (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    number = Decimal(str(value))
    return number if number >= 0 else None


def _plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


def _time(seconds: Decimal) -> tuple[str, str]:
    """An xmpDM Time: an integer count of ``scale`` seconds (``12.5`` is 125 of 1/10)."""
    exponent = seconds.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return str(int(seconds.scaleb(places))), f"1/{10**places}"


def _lang_alt(description: ET.Element, name: str, text: str) -> None:
    alt = _sub(_sub(description, name), "rdf:Alt")
    li = _sub(alt, "rdf:li", text)
    li.set(XML_LANG, "x-default")


def _array(description: ET.Element, name: str, kind: str, items: Sequence[str]) -> None:
    array = _sub(_sub(description, name), kind)
    for item in items:
        _sub(array, "rdf:li", item)


def _detail_fields(description: ET.Element, media_type: str, details: Mapping[str, Any]) -> None:
    text = _text(details.get("description"))
    if text is not None:
        _lang_alt(description, "dc:description", text)
    keywords = _texts(details.get("keywords"))
    if keywords:
        _array(description, "dc:subject", "rdf:Bag", keywords)
    title = _text(details.get("title"))
    if title is not None:
        _lang_alt(description, "dc:title", title)
    if media_type in TIMED_MEDIA:
        _dynamic_media_fields(description, details)


def _dynamic_media_fields(description: ET.Element, details: Mapping[str, Any]) -> None:
    artists = details.get("artists")
    names = (
        _texts([a.get("name") for a in artists if isinstance(a, dict)])
        if isinstance(artists, list)
        else []
    )
    if names:
        _sub(description, "xmpDM:artist", ", ".join(names))
    album = details.get("album")
    album_title = _text(album.get("title")) if isinstance(album, dict) else None
    if album_title is not None:
        _sub(description, "xmpDM:album", album_title)
    genres = _texts(details.get("genres"))
    if genres:
        _sub(description, "xmpDM:genre", ", ".join(genres))
    bpm = _number(details.get("bpm"))
    if bpm is not None:
        _sub(description, "xmpDM:tempo", _plain(bpm))
    duration = _number(details.get("duration"))
    if duration is not None:
        value, scale = _time(duration)
        time = _sub(description, "xmpDM:duration", rdf_parseType="Resource")
        _sub(time, "xmpDM:value", value)
        _sub(time, "xmpDM:scale", scale)


def _license_fields(
    description: ET.Element, media_id: str, licenses: Sequence[Mapping[str, Any]]
) -> None:
    terms = _unique(t for t in (_text(lic.get("license")) for lic in licenses) if t is not None)
    if terms:
        _lang_alt(description, "xmpRights:UsageTerms", ", ".join(terms))
    licensor = _sub(_sub(description, "plus:Licensor"), "rdf:Seq")
    entry = _sub(licensor, "rdf:li", rdf_parseType="Resource")
    _sub(entry, "plus:LicensorName", LICENSOR_NAME)
    _sub(entry, "plus:LicensorURL", LICENSOR_URL)
    _sub(description, "plus:ImageSupplierImageID", xml_text(media_id))
    ids = _unique(t for t in (_text(lic.get("license_id")) for lic in licenses) if t is not None)
    if ids:
        _array(description, "plus:LicensorTransactionID", "rdf:Bag", ids)


def _credit(details: Mapping[str, Any] | None) -> str:
    byline = _text(details.get("byline")) if details is not None else None
    return byline if byline is not None else LICENSOR_NAME


def xmp_packet(
    media_type: str,
    media_id: str,
    licenses: Sequence[Mapping[str, Any]],
    details: Mapping[str, Any] | None,
) -> bytes:
    """The XMP sidecar document of one asset: its description, keywords and title (when the
    details are known), credit, usage terms, licensor, supplier image id and license ids."""
    root = ET.Element(_q("x:xmpmeta"))
    rdf = _sub(root, "rdf:RDF")
    description = _sub(rdf, "rdf:Description", rdf_about="")
    if isinstance(details, Mapping):
        _detail_fields(description, media_type, details)
    else:
        details = None
    _sub(description, "photoshop:Credit", _credit(details))
    _license_fields(description, media_id, licenses)
    ET.indent(root, space=" ")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
    # a raw CR would reach a reader as LF (XML end-of-line handling); as a reference it stays
    # a CR. UTF-8 never has the byte 0x0D inside another character.
    return data.replace(b"\r", b"&#13;")
