"""Validated text that people type: display names, bios and email addresses.

Each type is an annotated ``str`` for pydantic models. What it refuses is stated in its JSON
schema, so the OpenAPI document every service publishes is true: the ``pattern`` there is
the very expression that is checked, next to the length limits. Refused everywhere: control
characters (Unicode category Cc, NUL included; a bio may hold newlines and tabs) and format
characters (Cf: zero-width spaces and joiners, bidirectional overrides, tag characters), which
render as nothing or reorder what others see; so emoji joined by U+200D are refused too. Lone
surrogates (Cs) cannot be encoded at all; pydantic refuses them first (``string_unicode``).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, StringConstraints

DISPLAY_NAME_MAX_LENGTH = 100
BIO_MAX_LENGTH = 1000
# The longest address SMTP carries: a 256-octet path less its angle brackets (RFC 5321 4.5.3.1.3).
EMAIL_MAX_LENGTH = 254

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
# Characters that are not Cc/Cf but show nothing on their own, so a name of only these is
# "invisible": Unicode's Default_Ignorable_Code_Point letters and marks (not in unicodedata)
# and the braille blank. Whitespace (category Z*) is added from unicodedata below.
_BLANK_EXTRA = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180D),  # Mongolian free variation selectors
    (0x180F, 0x180F),
    (0x2800, 0x2800),  # braille pattern blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0100, 0xE01EF),  # variation selectors supplement
)


def _unicode_classes() -> tuple[list[int], list[int]]:
    """Code points of categories Cc and Cf, and of Z* (whitespace and separators).

    Read from this Python's Unicode database, once per process (about 80 ms), so the refused
    set follows the Unicode version rather than a hand-kept table.
    """
    control_and_format: list[int] = []
    whitespace: list[int] = []
    for code_point in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code_point))
        if category in {"Cc", "Cf"}:
            control_and_format.append(code_point)
        elif category[0] == "Z":
            whitespace.append(code_point)
    return control_and_format, whitespace


def _class_body(code_points: Iterable[int]) -> str:
    """A regex character-class body matching exactly ``code_points``, as ranges."""
    ranges: list[list[int]] = []
    for code_point in sorted(code_points):
        if ranges and ranges[-1][1] == code_point - 1:
            ranges[-1][1] = code_point
        else:
            ranges.append([code_point, code_point])
    return "".join(
        _escape(first) if first == last else f"{_escape(first)}-{_escape(last)}"
        for first, last in ranges
    )


def _escape(code_point: int) -> str:
    # \uXXXX reads the same in Python's re, pydantic's Rust regex and ECMA-262; characters
    # beyond the BMP are written as themselves, which all three also read alike.
    return f"\\u{code_point:04X}" if code_point <= 0xFFFF else chr(code_point)


_CONTROL_AND_FORMAT, _WHITESPACE = _unicode_classes()
_REFUSED = _class_body(_CONTROL_AND_FORMAT)
# Tab and line feed stay allowed in a bio: it may have lines and indented ones.
_REFUSED_IN_BIO = _class_body(set(_CONTROL_AND_FORMAT) - {0x09, 0x0A})
_BLANK = _class_body(
    {*_WHITESPACE, *(point for first, last in _BLANK_EXTRA for point in range(first, last + 1))}
)

# Without look-around, which JSON Schema validators of other languages may not support.
PLAIN_TEXT_PATTERN = f"^[^{_REFUSED}]*$"
BIO_PATTERN = f"^[^{_REFUSED_IN_BIO}]*$"
# Any blank characters, then one that shows, then anything not refused.
DISPLAY_NAME_PATTERN = f"^[{_BLANK}]*[^{_BLANK}{_REFUSED}][^{_REFUSED}]*$"


def _fully_matching(pattern: str, message: str) -> AfterValidator:
    """A check of ``pattern``; each type also publishes it as its JSON schema's ``pattern``.

    Checked here rather than by ``StringConstraints(pattern=...)``, whose error message
    quotes the whole pattern (hundreds of characters of escapes) back to the client.
    """
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(message)
        return value

    return AfterValidator(check)


DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=DISPLAY_NAME_MAX_LENGTH),
    _fully_matching(
        DISPLAY_NAME_PATTERN,
        "a display name needs a visible character and cannot contain control or format characters",
    ),
    Field(
        description=(
            f"1 to {DISPLAY_NAME_MAX_LENGTH} characters after trimming whitespace, at least one "
            "of them visible; no control or format characters (Unicode Cc, Cf)."
        ),
        json_schema_extra={"pattern": DISPLAY_NAME_PATTERN},
        examples=["Ada Lovelace"],
    ),
]

Bio = Annotated[
    str,
    StringConstraints(max_length=BIO_MAX_LENGTH),
    _fully_matching(
        BIO_PATTERN, "a bio cannot contain control or format characters but newline and tab"
    ),
    Field(
        description=(
            f"Up to {BIO_MAX_LENGTH} characters, may be empty; newlines and tabs allowed, "
            "no other control or format characters (Unicode Cc, Cf)."
        ),
        json_schema_extra={"pattern": BIO_PATTERN},
        examples=["Counts things."],
    ),
]


def normalize_email(address: str) -> str:
    """The one spelling of an email address under which an account is stored and looked up.

    Unicode NFKC (full-width and other compatibility forms become plain ones), case folding
    of the local part, and the domain in IDNA A-label (punycode) form after UTS #46 mapping
    (non-transitional, so ``ß`` stays ``ß``: folding the domain with ``casefold`` would turn
    ``straße.de`` into the different domain ``strasse.de``). Raises ``ValueError`` for
    anything that is not a deliverable-looking address or holds control, format or surrogate
    characters. ``docs/decisions/0011-one-email-spelling.md`` says why the A-label form.
    """
    address = address.strip()
    if len(address) > EMAIL_MAX_LENGTH:
        raise ValueError(f"an email address has at most {EMAIL_MAX_LENGTH} characters")
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in address):
        raise ValueError("an email address cannot contain control or format characters")
    local_part, at, domain = unicodedata.normalize("NFKC", address).strip().rpartition("@")
    if not at:
        raise ValueError("an email address needs an @-sign")
    folded = unicodedata.normalize("NFKC", local_part.casefold())
    try:
        # Syntax and lengths per RFC 5321/6531; the domain through UTS #46 and IDNA 2008.
        validated = validate_email(f"{folded}@{domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return f"{validated.local_part}@{validated.ascii_domain}"


EmailAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX_LENGTH),
    _fully_matching(
        PLAIN_TEXT_PATTERN, "an email address cannot contain control or format characters"
    ),
    AfterValidator(normalize_email),
    Field(
        description=(
            "An email address; compared and stored after one normalisation (Unicode NFKC, "
            "case folding, the domain as IDNA A-labels), so every spelling of it is one account."
        ),
        json_schema_extra={"format": "email", "pattern": PLAIN_TEXT_PATTERN},
        examples=["ada@example.com"],
    ),
]
