"""Storage keys: nothing the API sends can make a key point outside the root."""

import posixpath

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from syncd.storage.keys import (
    SIDECAR_NAME,
    UnsafeValue,
    check_key,
    check_template,
    check_value,
    extension_of,
    render,
    xmp_key,
)

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


# --- XMP sidecar names (storage.xmp_sidecars): no file key can be one, none can be shared ---


def test_xmp_key_replace_puts_xmp_in_place_of_the_last_suffix():
    assert xmp_key("images/59656357/huge.jpg", "replace") == "images/59656357/huge.xmp"
    assert xmp_key("images/1/archive.tar.gz", "replace") == "images/1/archive.tar.xmp"


def test_xmp_key_replace_looks_only_at_the_file_name():
    assert xmp_key("dam.v2/images/1/huge", "replace") == "dam.v2/images/1/huge.xmp"


def test_xmp_key_append_adds_xmp_after_the_whole_name():
    assert xmp_key("images/59656357/huge.jpg", "append") == "images/59656357/huge.jpg.xmp"


def test_xmp_key_without_a_style_is_an_error():
    with pytest.raises(ValueError, match="off"):
        xmp_key("images/1/huge.jpg", "off")


@pytest.mark.parametrize(
    "key",
    ["images/1/huge.xmp", "images/1/huge.XMP", "images/1/huge.jpg.xmp", "images/1/huge.Xmp"],
)
def test_a_file_key_ending_in_xmp_is_refused(key):
    with pytest.raises(UnsafeValue, match="XMP"):
        check_key(key)


def test_a_file_key_with_xmp_inside_is_kept():
    assert check_key("images/1/huge.xmp.jpg") == "images/1/huge.xmp.jpg"
    assert check_key("images/xmp/huge.jpg") == "images/xmp/huge.jpg"


def test_a_download_url_ending_in_xmp_gives_no_storable_key():
    ext = extension_of("https://download.example/x/shutterstock_1.XMP?token=1")
    with pytest.raises(UnsafeValue, match="XMP"):
        check_key(
            render(
                TEMPLATE,
                media_type="images",
                media_id="1",
                license_id="l1",
                size="huge",
                format=None,
                ext=ext,
            )
        )


def test_a_format_xmp_gives_no_storable_key():
    with pytest.raises(UnsafeValue, match="XMP"):
        check_key(
            render(
                "{media_type}/{media_id}/{size}.{format}",
                media_type="images",
                media_id="1",
                license_id="l1",
                size="huge",
                format="xmp",
                ext=".jpg",
            )
        )


@pytest.mark.parametrize("name", ["Metadata.json", "METADATA.JSON", "metadata.JSON"])
def test_the_sidecar_name_in_another_letter_case_is_refused(name):
    # a case-insensitive filesystem would store it over metadata.json
    with pytest.raises(UnsafeValue, match="sidecar"):
        check_key(f"images/1/{name}")


def test_a_size_named_metadata_gets_its_own_file_and_xmp_names():
    args = dict(media_type="images", media_id="1", license_id="l1", format=None)
    with pytest.raises(UnsafeValue):
        check_key(render(TEMPLATE, size="metadata", ext=".json", **args))
    key = check_key(render(TEMPLATE, size="metadata", ext=".jpg", **args))
    names = {xmp_key(key, "replace"), xmp_key(key, "append")}
    assert names == {"images/1/metadata.xmp", "images/1/metadata.jpg.xmp"}
    assert SIDECAR_NAME not in {n.rsplit("/", 1)[-1] for n in names}


@pytest.mark.parametrize(
    "template",
    [
        "{media_type}/{media_id}/{size}.xmp",
        "{media_type}/{media_id}/{size}{ext}.xmp",
        "{media_type}/{media_id}/{size}/file.XMP",
        "{media_type}/{media_id}/{size}/metadata.json",
    ],
)
def test_templates_that_always_render_a_sidecar_name_are_refused(template):
    with pytest.raises(ValueError):
        check_template(template)


@pytest.mark.parametrize(
    "template, placeholder",
    [
        ("{media_type}/{media_id}/file.{size}", "size"),
        ("{media_type}/{size}/file.{media_id}", "media_id"),
        ("{size}/{media_id}/file.{media_type}", "media_type"),
    ],
)
def test_templates_telling_files_apart_only_by_the_last_suffix_are_refused_for_replace(
    template, placeholder
):
    # huge and small would both get file.xmp
    for style in (None, "replace"):
        with pytest.raises(ValueError, match=placeholder):
            check_template(template, xmp_sidecars=style)
    check_template(template, xmp_sidecars="append")
    check_template(template, xmp_sidecars="off")


_values = st.text(alphabet="abcXMPxmpjsonJSON019_-", min_size=1, max_size=10)
_exts = st.sampled_from([".jpg", ".xmp", ".json", ".mov", ".bin", ".wav"])


@given(
    st.sampled_from(
        [
            "{media_type}/{media_id}/{size}{ext}",
            "{media_type}/{media_id}/{size}.{format}",
            "{media_type}/{media_id}/{license_id}/{size}{ext}",
            "{media_type}/{media_id}/{size}",
        ]
    ),
    st.tuples(_values, _values, _values, _values | st.none(), _exts),
    st.tuples(_values, _values, _values, _values | st.none(), _exts),
    st.sampled_from(["replace", "append"]),
)
def test_no_xmp_name_is_a_file_key_or_the_sidecar_or_shared(template, one, two, style):
    check_template(template)
    keys = []
    for media_id, license_id, size, format, ext in (one, two):
        try:
            keys.append(
                (
                    (media_id, size),
                    check_key(
                        render(
                            template,
                            media_type="images",
                            media_id=check_value("media id", media_id),
                            license_id=check_value("license id", license_id),
                            size=check_value("size", size),
                            format=format,
                            ext=ext,
                        )
                    ),
                )
            )
        except UnsafeValue:
            continue
    assume(keys)
    for _asset, key in keys:
        name = xmp_key(key, style)
        assert name != key
        assert name.rsplit("/", 1)[-1] != SIDECAR_NAME
        assert not any(name.lower() == other.lower() for _a, other in keys)
    if len(keys) == 2 and keys[0][0] != keys[1][0]:
        assert xmp_key(keys[0][1], style) != xmp_key(keys[1][1], style)
