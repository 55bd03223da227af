"""Storage keys: nothing the API sends can make a key point outside the root."""

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.storage.keys import UnsafeValue, check_key, check_value, extension_of, render

TEMPLATE = "{media_type}/{media_id}/{size}{ext}"


@pytest.mark.parametrize(
    "url, ext",
    [
        ("https://download.example/gatekeeper/abc/shutterstock_1079756147.jpg", ".jpg"),
        ("https://download.example/x/clip.MOV?token=1", ".mov"),
        ("https://download.example/x/name%2Ewav", ".wav"),
        ("https://download.example/x/archive.tar.gz", ".gz"),
        ("https://download.example/x/noextension", ".bin"),
        ("https://download.example/x/", ".bin"),
        ("https://download.example/x/.hidden", ".bin"),
    ],
)
def test_extension_of_download_url(url, ext):
    assert extension_of(url) == ext


def test_extension_with_unsafe_characters_is_refused():
    with pytest.raises(UnsafeValue):
        extension_of("https://d.example/x/file.j%20pg")


@pytest.mark.parametrize("value", ["../../x", "..", "a/b", "a b", "", "x.y", "\x00", "é"])
def test_unsafe_values_are_refused(value):
    with pytest.raises(UnsafeValue):
        check_value("media id", value)


def test_contract_examples_render():
    assert (
        render(
            TEMPLATE,
            media_type="images",
            media_id="59656357",
            license_id="i1",
            size="huge",
            format="jpg",
            ext=".jpg",
        )
        == "images/59656357/huge.jpg"
    )
    assert (
        render(
            TEMPLATE,
            media_type="editorial/images",
            media_id="9804979n",
            license_id="e1",
            size="original",
            format=None,
            ext=".jpg",
        )
        == "editorial/images/9804979n/original.jpg"
    )


@given(st.text(max_size=40), st.text(max_size=12))
def test_any_value_that_passes_stays_inside_the_root(media_id, size):
    try:
        check_value("media id", media_id)
        check_value("size", size)
        key = check_key(
            render(
                TEMPLATE,
                media_type="images",
                media_id=media_id,
                license_id="l1",
                size=size,
                format=None,
                ext=".jpg",
            )
        )
    except UnsafeValue:
        return
    normal = posixpath.normpath(key)
    assert not normal.startswith("/") and not normal.startswith("..")
    assert normal.split("/")[0] == "images"


def test_sidecar_name_cannot_be_a_file_key():
    with pytest.raises(UnsafeValue):
        check_key("images/1/metadata.json")


@pytest.mark.parametrize(
    "template",
    [
        "{media_type}/{media_id}-{size}{ext}",
        "{media_type}/{media_id}{size}{ext}",
        "{media_type}/{media_id}/{license_id}_{size}{ext}",
    ],
)
def test_templates_whose_placeholders_could_run_together_are_refused(template):
    from syncd.storage.keys import check_template

    with pytest.raises(ValueError):
        check_template(template)


@pytest.mark.parametrize(
    "template",
    [
        "{media_type}/{media_id}/{size}{ext}",
        "{media_type}/{media_id}/{size}.{format}",
        "dam/{media_type}/{media_id}/{license_id}/{size}{ext}",
    ],
)
def test_sound_templates_are_accepted(template):
    from syncd.storage.keys import check_template

    check_template(template)


def test_an_unsafe_format_fails_only_when_the_template_uses_it():
    args = dict(
        media_type="images", media_id="1", license_id="l", size="huge", format="j/pg", ext=".jpg"
    )
    assert render(TEMPLATE, **args) == "images/1/huge.jpg"
    with pytest.raises(UnsafeValue):
        render("{media_type}/{media_id}/{size}.{format}", **args)
