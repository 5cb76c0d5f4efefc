"""The shared text types: what they refuse, that their published pattern is what they enforce,
and one spelling per email address."""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from gatehouse_common.text import Bio, DisplayName, EmailAddress, normalize_email

display_names: TypeAdapter[str] = TypeAdapter(DisplayName)
bios: TypeAdapter[str] = TypeAdapter(Bio)
emails: TypeAdapter[str] = TypeAdapter(EmailAddress)


class _Form(BaseModel):
    display_name: DisplayName
    bio: Bio
    email: EmailAddress


SCHEMA: dict[str, Any] = _Form.model_json_schema()["properties"]


def _accepts(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "name",
    [
        "a\x00b",  # NUL
        "a\x1bb",  # escape
        "a\u0085b",  # next line (C1 control)
        "a\u200bb",  # zero-width space
        "\u200b\u200c\u200d",  # nothing but zero-width characters
        "admin\u202egnp.exe",  # right-to-left override
        "\ufeffAda",  # byte-order mark
        "Ada\U000e0041",  # tag character
        "   ",
        "\u3000\u00a0\u2003",  # ideographic, no-break and em spaces only
        "\u3164",  # Hangul filler, a "letter" that shows nothing
        "\u2800\u2800",  # braille blanks
        "\ufe0f",  # a variation selector alone
        "",
        "x" * 101,
        "a\ud800b",  # a lone surrogate: not encodable, pydantic refuses it
    ],
)
def test_display_names_that_are_refused(name: str) -> None:
    assert not _accepts(display_names, name)


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("Ada", "Ada"),
        ("  Ada Lovelace  ", "Ada Lovelace"),
        ("Zoë", "Zoë"),
        ("\u3164Ada", "\u3164Ada"),  # a blank is fine next to something visible
        ("李小龍", "李小龍"),
        ("עדה", "עדה"),
        ("x" * 100, "x" * 100),
    ],
)
def test_display_names_that_are_kept(name: str, stored: str) -> None:
    assert display_names.validate_python(name) == stored


@pytest.mark.parametrize("bio", ["", "line one\nline two", "\tindented", "x" * 1000, "   "])
def test_bios_may_be_empty_and_hold_newlines_and_tabs(bio: str) -> None:
    assert bios.validate_python(bio) == bio


@pytest.mark.parametrize("bio", ["a\x00", "a\rb", "a\x0bb", "a\u2066b", "x" * 1001])
def test_bios_refuse_other_control_and_format_characters(bio: str) -> None:
    assert not _accepts(bios, bio)


def test_every_control_and_format_character_is_refused_and_nothing_else() -> None:
    """Exhaustive over Unicode: the bio pattern refuses exactly Cc and Cf but tab and newline."""
    pattern = re.compile(SCHEMA["bio"]["pattern"])
    for code_point in range(sys.maxunicode + 1):
        char = chr(code_point)
        category = unicodedata.category(char)
        if category == "Cs":
            continue  # not representable in JSON text or UTF-8
        refused = category in {"Cc", "Cf"} and char not in "\t\n"
        assert (pattern.search(char) is None) == refused, hex(code_point)


def test_the_published_schemas_state_the_limits() -> None:
    assert SCHEMA["display_name"]["minLength"] == 1
    assert SCHEMA["display_name"]["maxLength"] == 100
    assert SCHEMA["bio"]["maxLength"] == 1000
    assert SCHEMA["email"]["format"] == "email"
    assert SCHEMA["email"]["maxLength"] == 254
    for name in ("display_name", "bio", "email"):
        assert SCHEMA[name]["type"] == "string"
        re.compile(SCHEMA[name]["pattern"])


def _valid_by_schema(schema: dict[str, Any], value: str) -> bool:
    return (
        schema.get("minLength", 0) <= len(value) <= schema["maxLength"]
        and re.search(schema["pattern"], value) is not None
    )


@settings(max_examples=2000, deadline=None)
@given(value=st.text(max_size=120), field=st.sampled_from(["display_name", "bio"]))
def test_the_published_schema_is_what_is_enforced(value: str, field: str) -> None:
    """Whatever the published schema allows is accepted, and whatever is stored is allowed by it
    (a display name is trimmed first, so " Ada " is accepted and stored as "Ada")."""
    schema = SCHEMA[field]
    adapter = display_names if field == "display_name" else bios
    if any(unicodedata.category(char) == "Cs" for char in value):
        assert not _accepts(adapter, value)  # JSON text cannot carry these
        return
    try:
        stored = adapter.validate_python(value)
    except ValidationError:
        assert not _valid_by_schema(schema, value)
        return
    assert _valid_by_schema(schema, stored)


# --- email -------------------------------------------------------------------------------------


def _full_width(ascii_text: str) -> str:
    """The full-width spelling (U+FF01 to U+FF5E) of printable ASCII, as East Asian input gives."""
    return "".join(chr(ord(char) + 0xFEE0) for char in ascii_text)


@pytest.mark.parametrize(
    "spelling",
    [
        "ada@example.com",
        "Ada@Example.COM",
        "ADA@EXAMPLE.COM",
        "  ada@example.com ",
        _full_width("ada@example.com"),
        _full_width("ADA") + "@example.com",
    ],
)
def test_case_width_and_spacing_variants_are_one_address(spelling: str) -> None:
    assert normalize_email(spelling) == "ada@example.com"
    assert emails.validate_python(spelling) == "ada@example.com"


@pytest.mark.parametrize(
    "spelling",
    [
        "ada@bücher.de",
        "ada@BÜCHER.DE",
        "ada@xn--bcher-kva.de",
        "ADA@XN--BCHER-KVA.DE",
        "ada@" + _full_width("b") + "ü" + _full_width("cher") + ".de",
    ],
)
def test_a_unicode_domain_and_its_punycode_are_one_address(spelling: str) -> None:
    assert normalize_email(spelling) == "ada@xn--bcher-kva.de"


def test_the_local_part_is_case_folded_and_the_domain_keeps_sharp_s() -> None:
    # casefold() of the local part makes ß "ss"; in the domain, UTS 46 non-transitional
    # mapping keeps ß, as DNS does (straße.de and strasse.de are different domains).
    assert normalize_email("Straße@straße.de") == "strasse@xn--strae-oqa.de"
    assert normalize_email("STRASSE@strasse.de") == "strasse@strasse.de"


@pytest.mark.parametrize(
    "address",
    [
        "not an email",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada@example",
        "ada\x00@example.com",
        "ada\u200b@example.com",
        "ada@exa\u200bmple.com",
        "ada\u202e@example.com",
        "ada@example.com\r\nBcc: eve@example.com",
        "a" * 250 + "@example.com",
        "ada@ex ample.com",
        "ada@\ud800.com",
    ],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the fault
        normalize_email(address)
    assert not _accepts(emails, address)


@settings(max_examples=500, deadline=None)
@given(address=st.emails())
def test_normalising_twice_changes_nothing(address: str) -> None:
    try:
        once = normalize_email(address)
    except ValueError:
        return  # e.g. a special-use domain, refused consistently
    assert normalize_email(once) == once
