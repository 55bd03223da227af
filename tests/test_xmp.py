"""XMP sidecars: packets that exiftool reads back exactly as written, whatever the API's text."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.xmp import NAMESPACES, xmp_key, xmp_packet

CONTRACT_NAMESPACES = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "x": "adobe:ns:meta/",
    "xmpDM": "http://ns.adobe.com/xmp/1.0/DynamicMedia/",
}
LICENSOR = [{"LicensorName": "Shutterstock", "LicensorURL": "https://www.shutterstock.com"}]


def lic(license_id, license="standard", size="huge"):
    return {
        "license_id": license_id,
        "license": license,
        "size": size,
        "format": "jpg",
        "download_time": "2016-10-03T19:58:18Z",
        "subscription_id": "s8906043",
        "username": "jsmith",
        "is_downloadable": True,
        "metadata": {"purchase_order": "PO-17"},
    }


IMAGE_DETAILS = {
    "id": "59656357",
    "media_type": "image",
    "description": "Mountain lake at dawn, Banff National Park",
    "keywords": ["lake", "mountain", "dawn", "Banff"],
    "categories": [{"id": "13", "name": "Nature"}],
    "contributor": {"id": "250738318"},
    "image_type": "photo",
    "is_editorial": False,
}
VIDEO_DETAILS = {
    "id": "2140697",
    "media_type": "video",
    "description": "Aerial shot of waves on a beach",
    "keywords": ["aerial", "waves", "beach"],
    "duration": 12.345,
    "aspect_ratio": "16:9",
    "contributor": {"id": "123"},
}
AUDIO_DETAILS = {
    "id": "442583",
    "media_type": "audio",
    "title": "Bright Morning",
    "description": "Uplifting acoustic guitar with light percussion",
    "keywords": ["uplifting", "acoustic"],
    "artists": [{"name": "Fin Musik"}, {"name": "Ana Sol"}],
    "album": {"id": "77", "title": "Morning Light"},
    "genres": ["Folk", "Acoustic"],
    "bpm": 118,
    "duration": 187,
    "contributor": {"id": "9"},
}
EDITORIAL_DETAILS = {
    "id": "9804979n",
    "title": "Football - Premier League",
    "description": "A player celebrates a goal",
    "byline": "Jane Doe/Shutterstock",
    "keywords": ["football", "goal"],
    "caption": "The caption",
}


def read_with_exiftool(tmp_path, data, name="asset.xmp"):
    """The XMP tags exiftool reads from the packet (numbers kept as the text exiftool printed)."""
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        pytest.fail("exiftool is not installed (apt-get install libimage-exiftool-perl)")
    path = tmp_path / name
    path.write_bytes(data)
    run = subprocess.run(
        [exiftool, "-j", "-struct", "-G1", str(path)], capture_output=True, timeout=60
    )
    assert run.returncode == 0, run.stderr.decode()
    [tags] = json.loads(run.stdout, parse_float=str, parse_int=str)
    assert tags["File:FileType"] == "XMP"
    problems = {k: v for k, v in tags.items() if k.endswith((":Warning", ":Error"))}
    assert not problems, problems
    return {k: v for k, v in tags.items() if k.startswith("XMP-")}


def without_xml_illegal(text):
    """The text minus what XML 1.0 cannot carry (written out here, not taken from syncd)."""
    return "".join(
        c
        for c in text
        if c in "\t\n\r"
        or 0x20 <= ord(c) <= 0xD7FF
        or 0xE000 <= ord(c) <= 0xFFFD
        or 0x10000 <= ord(c) <= 0x10FFFF
    )


def test_image_packet_reads_back_in_exiftool(tmp_path):
    licenses = [lic("i4117504982"), lic("i5220931177")]
    tags = read_with_exiftool(tmp_path, xmp_packet("images", "59656357", licenses, IMAGE_DETAILS))
    assert tags == {
        "XMP-dc:Description": "Mountain lake at dawn, Banff National Park",
        "XMP-dc:Subject": ["lake", "mountain", "dawn", "Banff"],
        "XMP-photoshop:Credit": "Shutterstock",
        "XMP-xmpRights:UsageTerms": "standard",
        "XMP-plus:Licensor": LICENSOR,
        "XMP-plus:ImageSupplierImageID": "59656357",
        "XMP-plus:LicensorTransactionID": ["i4117504982", "i5220931177"],
    }


def test_video_packet_carries_its_duration_in_xmp_dm(tmp_path):
    licenses = [lic("v1", size="hd"), lic("v2", license="enhanced", size="sd")]
    tags = read_with_exiftool(tmp_path, xmp_packet("videos", "2140697", licenses, VIDEO_DETAILS))
    assert tags == {
        "XMP-dc:Description": "Aerial shot of waves on a beach",
        "XMP-dc:Subject": ["aerial", "waves", "beach"],
        # 12345 thousandths of a second
        "XMP-xmpDM:Duration": {"Value": "12345", "Scale": "0.001"},
        "XMP-photoshop:Credit": "Shutterstock",
        "XMP-xmpRights:UsageTerms": "standard, enhanced",
        "XMP-plus:Licensor": LICENSOR,
        "XMP-plus:ImageSupplierImageID": "2140697",
        "XMP-plus:LicensorTransactionID": ["v1", "v2"],
    }


def test_audio_packet_carries_title_artist_album_genre_tempo_and_duration(tmp_path):
    licenses = [lic("a77", license="premier_music_basic", size="original")]
    tags = read_with_exiftool(tmp_path, xmp_packet("audio", "442583", licenses, AUDIO_DETAILS))
    assert tags == {
        "XMP-dc:Description": "Uplifting acoustic guitar with light percussion",
        "XMP-dc:Subject": ["uplifting", "acoustic"],
        "XMP-dc:Title": "Bright Morning",
        "XMP-xmpDM:Artist": "Fin Musik, Ana Sol",
        "XMP-xmpDM:Album": "Morning Light",
        "XMP-xmpDM:Genre": "Folk, Acoustic",
        "XMP-xmpDM:Tempo": "118",
        "XMP-xmpDM:Duration": {"Value": "187", "Scale": "1"},
        "XMP-photoshop:Credit": "Shutterstock",
        "XMP-xmpRights:UsageTerms": "premier_music_basic",
        "XMP-plus:Licensor": LICENSOR,
        "XMP-plus:ImageSupplierImageID": "442583",
        "XMP-plus:LicensorTransactionID": ["a77"],
    }


def test_editorial_packet_credits_the_byline_and_carries_the_title(tmp_path):
    licenses = [lic("e3f0c2a9", license="premier_editorial_all_digital", size="original")]
    tags = read_with_exiftool(
        tmp_path, xmp_packet("editorial/images", "9804979n", licenses, EDITORIAL_DETAILS)
    )
    assert tags["XMP-photoshop:Credit"] == "Jane Doe/Shutterstock"
    assert tags["XMP-dc:Title"] == "Football - Premier League"
    assert tags["XMP-dc:Description"] == "A player celebrates a goal"
    assert tags["XMP-xmpRights:UsageTerms"] == "premier_editorial_all_digital"
    assert tags["XMP-plus:ImageSupplierImageID"] == "9804979n"


HOSTILE = (
    '<script>alert("x")</script> & &amp; \'single\' "double" ]]> <![CDATA[ x ]]> <!-- c -->'
    " \x00\x01\x08\x0b\x0c\x1f bell\x07 tab\there\r\nCRLF line\rCR line\nLF line"
    " \ud800lone\udfff surrogates \ufffe\uffff nonchars"
    " Zürich – 東京 Ünïcödé 🦊 👩\u200d👩\u200d👧 \U0010fffd"
)


def test_xml_special_text_round_trips_through_exiftool(tmp_path):
    details = {
        "description": HOSTILE,
        "keywords": ["<b>bold</b>", "a & b", '"quoted"', "]]>", "snow\x0bman ☃", "🦊"],
        "title": "Title <&> \"'",
        "byline": "Ann & <Bob>",
    }
    data = xmp_packet("editorial/images", "9804979n", [lic("e<1>")], details)
    tags = read_with_exiftool(tmp_path, data)
    expected = without_xml_illegal(HOSTILE)
    assert "\x00" not in expected and "\ud800" not in expected and "\r\n" in expected
    assert tags["XMP-dc:Description"] == expected
    assert tags["XMP-dc:Subject"] == ["<b>bold</b>", "a & b", '"quoted"', "]]>", "snowman ☃", "🦊"]
    assert tags["XMP-dc:Title"] == "Title <&> \"'"
    assert tags["XMP-photoshop:Credit"] == "Ann & <Bob>"
    assert tags["XMP-plus:LicensorTransactionID"] == ["e<1>"]


def test_asset_without_details_gets_the_license_fields_alone(tmp_path):
    licenses = [lic("i1"), lic("i2", license="enhanced")]
    tags = read_with_exiftool(tmp_path, xmp_packet("images", "59656357", licenses, None))
    assert tags == {
        "XMP-photoshop:Credit": "Shutterstock",
        "XMP-xmpRights:UsageTerms": "standard, enhanced",
        "XMP-plus:Licensor": LICENSOR,
        "XMP-plus:ImageSupplierImageID": "59656357",
        "XMP-plus:LicensorTransactionID": ["i1", "i2"],
    }


def test_details_with_missing_or_odd_fields_give_only_what_is_there(tmp_path):
    details = {
        "description": None,
        "keywords": [None, 3, "kept", ""],
        "title": "   ",
        "artists": [{"name": None}, "x"],
        "album": None,
        "bpm": True,
        "duration": float("nan"),
    }
    tags = read_with_exiftool(tmp_path, xmp_packet("audio", "1", [lic("a1")], details))
    assert tags["XMP-dc:Subject"] == ["kept"]
    assert not [k for k in tags if k.startswith("XMP-xmpDM") or k in ("XMP-dc:Title",)]
    assert "XMP-dc:Description" not in tags


def q(name):
    prefix, local = name.split(":")
    return f"{{{CONTRACT_NAMESPACES[prefix]}}}{local}"


def test_packet_shape_and_namespaces_are_the_contracts():
    data = xmp_packet("audio", "442583", [lic("a1"), lic("a2")], AUDIO_DETAILS)
    assert data.startswith(b"<?xml version=")
    root = ET.fromstring(data)
    assert root.tag == q("x:xmpmeta")
    [rdf] = list(root)
    assert rdf.tag == q("rdf:RDF")
    [description] = list(rdf)
    assert description.tag == q("rdf:Description")
    assert description.get(q("rdf:about")) == ""
    for prop in ("dc:description", "dc:title", "xmpRights:UsageTerms"):
        [alt] = list(description.find(q(prop)))
        assert alt.tag == q("rdf:Alt")
        [li] = list(alt)
        assert li.get("{http://www.w3.org/XML/1998/namespace}lang") == "x-default"
    for prop in ("dc:subject", "plus:LicensorTransactionID"):
        assert [c.tag for c in description.find(q(prop))] == [q("rdf:Bag")]
    [seq] = list(description.find(q("plus:Licensor")))
    assert seq.tag == q("rdf:Seq")
    [entry] = list(seq)
    assert entry.get(q("rdf:parseType")) == "Resource"
    assert entry.findtext(q("plus:LicensorName")) == "Shutterstock"
    assert entry.findtext(q("plus:LicensorURL")) == "https://www.shutterstock.com"
    assert description.findtext(q("plus:ImageSupplierImageID")) == "442583"
    assert {k: v for k, v in NAMESPACES.items()} == CONTRACT_NAMESPACES


def test_same_asset_gives_the_same_bytes_and_a_change_gives_others():
    licenses = [lic("i1"), lic("i2")]
    one = xmp_packet("images", "59656357", licenses, IMAGE_DETAILS)
    reordered = dict(reversed(list(IMAGE_DETAILS.items())))
    assert xmp_packet("images", "59656357", [dict(x) for x in licenses], reordered) == one
    assert xmp_packet("images", "59656357", licenses + [lic("i3")], IMAGE_DETAILS) != one
    assert xmp_packet("images", "59656357", licenses, None) != one
    changed = {**IMAGE_DETAILS, "keywords": ["lake"]}
    assert xmp_packet("images", "59656357", licenses, changed) != one


def test_a_license_id_seen_twice_is_listed_once():
    data = xmp_packet("images", "1", [lic("i1"), lic("i1"), lic("i2")], None)
    bag = ET.fromstring(data).find(f".//{q('plus:LicensorTransactionID')}/{q('rdf:Bag')}")
    assert [li.text for li in bag] == ["i1", "i2"]


def test_xmp_key_styles():
    assert xmp_key("images/59656357/huge.jpg", "replace") == "images/59656357/huge.xmp"
    assert xmp_key("images/59656357/huge.jpg", "append") == "images/59656357/huge.jpg.xmp"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(st.text(), max_size=8), st.text())
def test_any_text_gives_a_packet_whose_values_round_trip(text, keywords, title):
    data = xmp_packet(
        "audio", "1", [lic("a1")], {"description": text, "keywords": keywords, "title": title}
    )
    description = ET.fromstring(data).find(q("rdf:RDF")).find(q("rdf:Description"))

    def alt(prop):
        return description.findtext(f"{q(prop)}/{q('rdf:Alt')}/{q('rdf:li')}")

    def kept(value):
        value = without_xml_illegal(value)
        return value if value.strip() else None

    assert alt("dc:description") == kept(text)
    assert alt("dc:title") == kept(title)
    subject = [
        li.text for li in description.iterfind(f"{q('dc:subject')}/{q('rdf:Bag')}/{q('rdf:li')}")
    ]
    assert subject == [k for k in map(kept, keywords) if k is not None]
    assert description.findtext(q("plus:ImageSupplierImageID")) == "1"
