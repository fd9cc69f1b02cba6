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


# --------------------------------------------------------------------------- attempts of the wrong shape

@pytest.mark.parametrize(("text", "tokens", "problem"), [
    ("GD12345", ["GD12345"], "只有 5 位数字"),
    ("GD2611250042171234567890", ["GD2611250042171234567890"], "有 22 位数字"),
    ("GD26112500421X", ["GD26112500421X"], "“X”"),
    ("SS-12", ["SS-12"], "只有 2 位数字"),
    ("261125004217", ["261125004217"], "前面少了"),
    ("GB261125004217", ["GB261125004217"], "开头的 GB 不对"),
    ("工单号是 2611", ["2611"], "前面少了"),
    ("帮我查下工单 gd 12345 的进度", ["gd 12345"], "只有 5 位数字"),
    ("ＧＤ１２３４５到哪了", ["ＧＤ１２３４５"], "只有 5 位数字"),  # named as typed, full width
    ("查进度 261125004217", ["261125004217"], "前面少了"),
    ("工单2611180001处理到哪了", ["2611180001"], "前面少了"),
    ("申诉单号：SS2611，帮我看看", ["SS2611"], "只有 4 位数字"),
    ("GD 2611 2500 4217 到哪了", ["GD 2611 2500 4217"], "数字中间不要加空格或横线"),  # copied in groups
    ("SS2611-160001", ["SS2611-160001"], "数字中间不要加空格或横线"),
    ("GD12 2000元", ["GD12"], "只有 2 位数字"),  # an amount after it is not a group of its digits
    ("判罚单号 CF１２３", ["CF１２３"], "只有 3 位数字"),
    ("DG261125004217", ["DG261125004217"], "开头的 DG 不对"),  # the letters swapped
])
def test_attempted_numbers_of_the_wrong_shape_are_found_as_typed(text, tokens, problem):
    assert numbers.find_malformed(text) == tokens
    assert problem in numbers.problem(tokens[0])


@pytest.mark.parametrize("text", [
    "保证金交了2000元", "3月15号发的货", "电话13800138000换了", "13800138000", "提现500元多久到账",
    "订单号 391234567890123456 怎么还没发货", "订单号2611250042一直没发货", "快递单号 773012345678 查不到物流",
    "SF1234567890123 物流不动了", "商品要符合GB31701吗", "申诉3次了还不通过", "判罚 2000 元能退吗",
    "工单号是12位吗", "违规扣满12分会怎样", "USB3.0 的线", "iPhone15 能上架吗", "5G手机", "A4纸", "MP3",
    "客服电话4008123123打不通", "货款1234567890元", "我的店铺ID 1234567890", "",
])
def test_amounts_dates_phones_and_other_codes_are_no_attempt(text):
    assert numbers.find_malformed(text) == []


@pytest.mark.parametrize("text", ["GD261125004217", "请查 gd-261125004217，谢谢", "工单号 GD2611180001",
                                  "ＳＳ２６１１１６０００１", "CF 2611200003", "GD123456", "SS 2611160001 到哪了"])
def test_a_well_formed_number_is_no_attempt_whether_or_not_it_exists(text):
    assert numbers.find_malformed(text) == [] and numbers.find_in_text(text)


def test_only_the_mistyped_one_of_two_numbers_is_named():
    assert numbers.find_malformed("GD261125004217 和 SS12 都查一下") == ["SS12"]
    assert numbers.find_in_text("GD261125004217 和 SS12 都查一下") == ["GD261125004217"]


def test_a_number_running_on_into_letters_is_not_cut_short():
    assert numbers.find_in_text("GD26112500421X") == []
    assert numbers.find_in_text("GD26112500421O") == []  # the letter O for a zero


@PROPERTY
@given(text=TEXT)
def test_no_attempt_contains_a_number_find_in_text_reads(text):
    for token in numbers.find_malformed(text):
        assert token and token in text
        assert numbers.find_in_text(token) == []


@pytest.mark.parametrize("kind", [numbers.CASE, numbers.APPEAL, numbers.PENALTY])
def test_the_reply_names_the_token_and_how_every_kind_of_number_looks(kind):
    reply = numbers.malformed_reply(["GD12345"], kind)
    assert reply.startswith("没有找到“GD12345”（只有 5 位数字）：")
    assert f"{numbers.KIND_NAMES[kind]}是 {kind} 加 12 位数字（例如 {kind}261125004217）" in reply
    assert all(p in reply for p in ("GD", "SS", "CF")) and reply.endswith("或者从下面选一个：")
    assert numbers.malformed_reply(["SS-12"], kind, choose=False).endswith("请核对后再发一次。")
