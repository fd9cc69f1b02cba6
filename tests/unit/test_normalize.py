import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge_base.normalize import apply_synonyms, normalize, to_simplified


def test_full_width_and_case_fold():
    assert normalize("ＡＢＣ１２３") == "abc123"


def test_traditional_becomes_simplified():
    assert normalize("提現失敗了怎麼辦") == "提现失败了怎么办"


def test_punctuation_emoji_and_controls_become_spaces():
    assert normalize("保证金！！😀怎么\x07退？") == "保证金 怎么 退"


def test_nothing_meaningful_left_is_empty():
    for text in ["", "   ", "😀😀😀", "？！。，", "\x00\x01\x02"]:
        assert normalize(text) == ""


def test_huge_input_is_capped():
    assert len(normalize("保证金" * 5000, max_chars=512)) == 512


def test_synonyms_prefer_the_longest_term():
    table = {"押金": "保证金", "钱冻住了": "货款冻结", "钱": "货款"}
    assert apply_synonyms("我的钱冻住了", table) == "我的货款冻结"
    assert normalize("押金咋退", table) == "保证金咋退"


# --------------------------------------------------------------------------- properties (hypothesis)

PROPERTY = settings(max_examples=400, derandomize=True, database=None, deadline=None)
# any code point (lone surrogates and controls too), with CJK, full-width forms and odd spacing mixed in
CHARS = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(categories=["Cs", "Cc", "Cf", "Mn", "Zs"]),
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),
    st.sampled_from("İǅẞﬁ㍿Ⅻℌ\u3000\u00a0 \t\n"),
)
TEXT = st.text(CHARS, max_size=60)


def fullwidth(text: str) -> str:
    return "".join("\u3000" if ch == " " else chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


@PROPERTY
@given(text=st.one_of(TEXT, TEXT.map(lambda t: t * 5000)), max_chars=st.integers(1, 40))
def test_normalize_never_raises_and_leaves_only_clean_text(text, max_chars):
    out = normalize(text, max_chars=max_chars)
    assert len(out) <= max_chars
    assert out == out.strip() and "  " not in out
    assert all(ch == " " or unicodedata.category(ch)[0] in "LN" for ch in out)
    assert unicodedata.normalize("NFKC", out) == out
    assert out.lower() == out
    out.encode("utf-8")  # no lone surrogate survives


@PROPERTY
@given(text=TEXT, max_chars=st.sampled_from([3, 8, 512]))
def test_normalize_is_idempotent(text, max_chars):
    once = normalize(text, max_chars=max_chars)
    assert normalize(once, max_chars=max_chars) == once


@PROPERTY
@given(text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60))
def test_full_width_and_upper_case_variants_read_the_same(text):
    assert normalize(fullwidth(text)) == normalize(text) == normalize(text.upper())


@PROPERTY
@given(text=st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=30))
def test_traditional_and_simplified_spellings_read_the_same(text):
    assert normalize(to_simplified(text)) == normalize(text)


def test_a_dotted_capital_i_and_a_cut_on_a_space_normalise_to_a_fixed_point():
    assert normalize("İ") == "i" == normalize(normalize("İ"))
    assert normalize("保证金 怎么退", max_chars=4) == "保证金"
