"""The numbers merchants type (api/numbers.py): properties checked with hypothesis, and the shapes that matter."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import numbers

PROPERTY = settings(max_examples=400, derandomize=True, database=None, deadline=None)
KINDS = st.sampled_from([numbers.CASE, numbers.APPEAL, numbers.PENALTY])
CANONICAL = re.compile(r"(GD|SS|CF)[0-9]{6,20}")
# any text, and text close to a number: prefixes in any case and width, digits of every script, separators
NEAR = st.lists(st.one_of(st.sampled_from(["GD", "SS", "CF", "gd", "ｓｓ", "Ｃｆ", "-", "_", " ", "\u3000", "ß"]),
                          st.characters(categories=["Nd"]), st.characters(exclude_categories=())),
                max_size=30).map("".join)
DIGITS_OF_ANY_SCRIPT = st.builds(str.__add__, KINDS, st.text(st.characters(categories=["Nd"]), min_size=6, max_size=22))
TEXT = st.one_of(st.text(st.characters(exclude_categories=())), NEAR, DIGITS_OF_ANY_SCRIPT)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


@PROPERTY
@given(raw=TEXT, kind=KINDS)
def test_parse_never_raises_and_what_it_accepts_is_canonical_and_parses_to_itself(raw, kind):
    number = numbers.parse(raw, kind)
    if number is not None:
        assert CANONICAL.fullmatch(number) and number.startswith(kind)
        assert numbers.parse(number, kind) == number
        assert all(numbers.parse(number, other) is None for other in ("GD", "SS", "CF") if other != kind)


@PROPERTY
@given(kind=KINDS, digits=st.text("0123456789", min_size=6, max_size=20), lower=st.booleans(), wide=st.booleans(),
       sep=st.sampled_from(["", " ", "-", " - ", "_", "\u3000"]))
def test_the_ways_merchants_type_a_number_all_parse_to_it(kind, digits, lower, wide, sep):
    typed = (kind.lower() if lower else kind) + sep + digits[:3] + sep + digits[3:]
    typed = fullwidth(typed) if wide else typed
    assert numbers.parse(f" {typed} ", kind) == kind + digits


@PROPERTY
@given(kind=KINDS, digits=st.text("0123456789", max_size=40))
def test_too_few_or_too_many_digits_is_no_number(kind, digits):
    expected = kind + digits if 6 <= len(digits) <= 20 else None
    assert numbers.parse(kind + digits, kind) == expected


@pytest.mark.parametrize("raw", ["GD١٢٣٤٥٦٧", "GD१२३४५६७", "SS１２３abc", "CF", "", "GD 12345", "XX123456"])
def test_digits_of_other_scripts_and_broken_shapes_are_refused(raw):
    assert all(numbers.parse(raw, kind) is None for kind in ("GD", "SS", "CF"))


@PROPERTY
@given(text=TEXT)
def test_every_number_found_in_a_message_is_one_parse_accepts(text):
    for number in numbers.find_in_text(text):
        assert numbers.parse(number, number[:2]) == number


def test_a_number_inside_a_longer_run_of_digits_is_not_found():
    assert numbers.find_in_text("请查 GD2611250042171234567890123") == []
    assert numbers.find_in_text("请查 gd-261125004217，谢谢") == ["GD261125004217"]


@PROPERTY
@given(kind=KINDS)
def test_new_numbers_parse_to_themselves(kind):
    number = numbers.new_number(kind)
    assert numbers.parse(number, kind) == number
