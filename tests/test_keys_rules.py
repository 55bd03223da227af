"""Storage keys, rule by rule: each refusal with its exact message, and the corners of the
template checks (escaped braces, a bare {ext} segment, the replace-style XMP names)."""

import pytest

from syncd.storage.keys import (
    UnsafeValue,
    check_key,
    check_object_key,
    check_template,
    check_value,
    extension_of,
    render,
    sidecar_key,
    xmp_key,
)

SAFE = "is not a safe key part (letters, digits, _ and - only)"


def message(call, *args, **kwargs):
    with pytest.raises(ValueError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_an_unsafe_value_is_named_with_its_repr():
    assert message(check_value, "media id", "a/b") == f"media id 'a/b' {SAFE}"
    assert message(check_value, "size", 7) == f"size 7 {SAFE}"


@pytest.mark.parametrize(
    "url, ext",
    [("file.JPG", ".jpg"), ("https://download.example", ".bin"), ("/a/b/c.Wav", ".wav")],
)
def test_the_extension_comes_from_the_last_segment_even_without_a_folder(url, ext):
    assert extension_of(url) == ext


def test_an_unsafe_extension_is_named():
    assert message(extension_of, "https://d.example/x/file.j%20pg") == (
        "file suffix '.j pg' of the download URL is not a safe key part"
    )


@pytest.mark.parametrize(
    "template, problem",
    [
        ("{media_type", "is not a valid template (expected '}' before end of string)"),
        (
            "{media_type}/{media_id}/{size}/{bogus}",
            "unknown placeholder {bogus} (known: media_type, media_id, license_id, size, "
            "format, ext)",
        ),
        (
            "{media_type}/{media_id}/{size!r}",
            "placeholder {size} takes no format spec or conversion",
        ),
        (
            "{media_type}/{media_id}/{size:>9}",
            "placeholder {size} takes no format spec or conversion",
        ),
        (
            "{media_type}/{license_id}{ext}",
            "must contain {media_id}, {size} so that each asset and size has its own key",
        ),
        (
            "{media_type}/{media_id}-{size}{ext}",
            "{media_id} and {size} must be parted by '/' or '.' so that two assets can never "
            "share a key",
        ),
        (
            "{media_type}/{media_id}/{size}/{ext}",
            "key 'editorial/images/m1/huge/.jpg' has an empty, hidden or parent segment",
        ),
        (
            "{media_type}/{media_id}/file.{size}",
            "{size} must not be the last suffix of the file name: with storage.xmp_sidecars = "
            "replace two files would share one XMP sidecar",
        ),
    ],
)
def test_a_refused_template_says_why(template, problem):
    assert message(check_template, template) == problem


@pytest.mark.parametrize(
    "template",
    [
        "{{x}}/{media_type}/{media_id}/{size}{ext}",  # escaped braces are plain text
        "{media_type}/{media_id}/{{{size}{ext}",  # '/' before an escaped brace parts them
        "{media_type}/{media_id}.{{{size}{ext}",  # and so does '.'
        "{media_type}/{media_id}/x.{size}{ext}",  # {ext} keeps huge and small apart
    ],
)
def test_templates_with_escaped_braces_or_a_size_before_ext_are_accepted(template):
    check_template(template)


def test_render_fills_every_placeholder_and_a_missing_format_comes_from_the_extension():
    template = "{media_type}/{media_id}/{license_id}/{size}.{format}"
    assert (
        render(
            template,
            media_type="images",
            media_id="1",
            license_id="L1",
            size="huge",
            format=None,
            ext=".jpg",
        )
        == "images/1/L1/huge.jpg"
    )
    assert (
        render(
            "{media_id}/{size}.{format}",
            media_type="images",
            media_id="1",
            license_id="L1",
            size="huge",
            format=None,
            ext=".Xmov",
        )
        == "1/huge.Xmov"
    )
    with pytest.raises(UnsafeValue) as caught:
        render(
            template,
            media_type="images",
            media_id="1",
            license_id="L1",
            size="huge",
            format="../x",
            ext=".jpg",
        )
    assert str(caught.value) == f"format '../x' {SAFE}"


@pytest.mark.parametrize(
    "key, problem",
    [
        ("", "key '' is not a relative path"),
        ("/images/1/huge.jpg", "key '/images/1/huge.jpg' is not a relative path"),
        ("images\\1\\huge.jpg", "key 'images\\\\1\\\\huge.jpg' is not a relative path"),
        ("images/1/huge\x00.jpg", "key 'images/1/huge\\x00.jpg' is not a relative path"),
        ("images//huge.jpg", "key 'images//huge.jpg' has an empty, hidden or parent segment"),
        ("images/./huge.jpg", "key 'images/./huge.jpg' has an empty, hidden or parent segment"),
        ("images/../huge.jpg", "key 'images/../huge.jpg' has an empty, hidden or parent segment"),
        ("images/.huge.jpg", "key 'images/.huge.jpg' has an empty, hidden or parent segment"),
        ("images/1/Metadata.JSON", "key 'images/1/Metadata.JSON' would overwrite a sidecar"),
        ("images/1/huge.Xmp", "key 'images/1/huge.Xmp' ends in .xmp, the name of XMP sidecars"),
        (
            "quarantine/1/huge.jpg",
            "key 'quarantine/1/huge.jpg' lies in the reserved folder quarantine/",
        ),
        ("quarantine", "key 'quarantine' lies in the reserved folder quarantine/"),
    ],
)
def test_a_refused_key_says_why(key, problem):
    assert message(check_key, key) == problem


def test_quarantine_below_the_first_segment_is_an_ordinary_folder():
    assert check_key("images/quarantine/huge.jpg") == "images/quarantine/huge.jpg"


def test_the_sidecar_key_checks_the_media_id():
    assert sidecar_key("editorial/images", "9804979n") == "editorial/images/9804979n/metadata.json"
    assert message(sidecar_key, "images", "../1") == f"media id '../1' {SAFE}"


def test_an_unknown_xmp_style_names_the_known_ones():
    assert message(xmp_key, "images/1/huge.jpg", "off") == (
        "XMP sidecar style 'off' has no key (known: replace, append)"
    )


# --- check_object_key: what every backend accepts (sidecars included) -----------------------


@pytest.mark.parametrize(
    "key", ["images/1/huge.jpg", "images/1/metadata.json", "a", "editorial/images/9n/x.xmp"]
)
def test_check_object_key_accepts_plain_relative_keys(key):
    assert check_object_key(key) == key


@pytest.mark.parametrize(
    "key, message",
    [
        ("", "key '' is not a relative path"),
        ("/abs/x", "key '/abs/x' is not a relative path"),
        ("a\\b", "key 'a\\\\b' is not a relative path"),
        ("a\x00b", "key 'a\\x00b' is not a relative path"),
        ("../x", "key '../x' has an empty, hidden or parent segment"),
        ("a/../b", "key 'a/../b' has an empty, hidden or parent segment"),
        ("a/./b", "key 'a/./b' has an empty, hidden or parent segment"),
        ("a//b", "key 'a//b' has an empty, hidden or parent segment"),
        ("a/", "key 'a/' has an empty, hidden or parent segment"),
        (".syncd-partial/x", "key '.syncd-partial/x' has an empty, hidden or parent segment"),
        ("a/.hidden", "key 'a/.hidden' has an empty, hidden or parent segment"),
    ],
)
def test_check_object_key_refuses_with_its_reason(key, message):
    with pytest.raises(UnsafeValue) as caught:
        check_object_key(key)
    assert str(caught.value) == message
