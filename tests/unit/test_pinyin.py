import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge_base.pinyin import MAX_RUN, PinyinReader, english_to_mixed, readings

# A few normalised KB phrasings (what the retriever indexes): simplified, lower case, spaces for punctuation.
PHRASINGS = [
    "保证金怎么退", "保证金退还要多久", "怎么申请退保证金", "保证金不足怎么补缴",
    "提现多久能到账", "提现失败是什么原因", "提现要手续费吗", "怎么更换提现银行卡", "银行卡号填错了",
    "营业执照过期了怎么更新", "没有营业执照能开店吗", "申诉进度在哪里看", "现在可以申诉吗 现在就要",
    "西安仓库发货慢", "货款被冻结了怎么办", "工单进度怎么查", "行为规范在哪看", "后台mima要改",
]


@pytest.fixture(scope="module")
def reader():
    return PinyinReader.from_texts(PHRASINGS)


def test_full_pinyin_with_spaces(reader):
    assert reader.to_hanzi("baozhengjin zenme tui") == "保证金怎么退"
    assert reader.to_hanzi("tixian duojiu daozhang") == "提现多久到账"


def test_full_pinyin_without_spaces(reader):
    assert reader.to_hanzi("baozhengjinzenmetui") == "保证金怎么退"
    assert reader.to_hanzi("huokuanbeidongjielezenmeban") == "货款被冻结了怎么办"


def test_one_syllable_per_space_separated_piece(reader):
    assert reader.to_hanzi("bao zheng jin zen me tui") == "保证金怎么退"
    # a syllable never spans a space the merchant typed: "xi an" is two syllables, "xian" one
    assert reader.to_hanzi("xi an") == "西安"
    assert reader.to_hanzi("xian") == "现"


def test_heteronyms_are_read_in_context():
    assert readings("银行卡") == ["yin", "hang", "ka"]
    assert readings("行为") == ["xing", "wei"]


def test_a_heteronym_is_written_where_the_kb_reads_it_so(reader):
    assert reader.to_hanzi("yinhangka tian cuo le") == "银行卡填错了"
    assert reader.to_hanzi("xingwei guifan") == "行为规范"


def test_initials_become_a_kb_word(reader):
    assert reader.to_hanzi("bzj zenme tui") == "保证金怎么退"
    assert reader.to_hanzi("yyzz guoqi le") == "营业执照过期了"
    assert reader.initials("bzj") == "保证金"
    assert reader.initials("yhk") == "银行卡"


def test_initials_need_two_letters_and_a_kb_word(reader):
    assert reader.initials("b") is None
    assert reader.initials("zzzz") is None          # no KB word has these initials
    assert reader.initials("bzjx") is None          # the whole run must match
    assert reader.to_hanzi("zzzz") is None


def test_pinyin_mixed_with_chinese(reader):
    assert reader.to_hanzi("bzj怎么退") == "保证金怎么退"
    assert reader.to_hanzi("提现shibai是什么原因") == "提现失败是什么原因"
    assert reader.to_hanzi("保证金 zenme tui") == "保证金怎么退"


def test_codes_and_brand_words_stay_within_a_rewrite(reader):
    assert reader.to_hanzi("gd2611 jindu") == "gd2611 进度"
    assert reader.to_hanzi("iphone tixian shibai") == "iphone 提现失败"


@pytest.mark.parametrize("text", [
    "how do i get my deposit back", "can i change my bank card", "why was my withdrawal rejected",
    "gd2611", "ss2024110300012", "iphone", "ok", "vip", "app", "qq", "a店的货款", "t恤尺码",
    "保证金怎么退", "提现 多久 到账",
])
def test_english_codes_brands_and_chinese_are_left_alone(reader, text):
    assert reader.to_hanzi(text) is None


def test_empty_input(reader):
    assert reader.to_hanzi("") is None
    assert reader.to_hanzi("   ") is None
    assert reader.to_hanzi(None) is None


def test_an_empty_kb_keeps_unknown_syllables_as_letters():
    empty = PinyinReader.from_texts([])
    assert empty.to_hanzi("baozhengjin") == "baozhengjin"
    assert empty.initials("bzj") is None


def test_latin_in_kb_phrasings_is_not_vocabulary(reader):
    assert reader.initials("mm") is None  # "mima" in a phrasing is not a Chinese word of the KB


def test_huge_input_takes_bounded_time(reader):
    inputs = ["bao zheng jin " * 800, "baozhengjin" * 1000, "保证金zenme退 " * 1000, "x" * 10_000,
              "bzj " * 2_500]
    for text in inputs:
        assert len(text) >= 10_000
        started = time.perf_counter()
        out = reader.to_hanzi(text)
        assert time.perf_counter() - started < 2.0
        assert out is None or len(out) <= len(text)
    assert reader.to_hanzi("baozhengjin" * 1000) is None           # one word far longer than MAX_RUN letters
    assert reader.to_hanzi("bao zheng jin " * 800).startswith("保证金保证金")


def test_a_long_stretch_is_decoded_in_pieces_of_at_most_max_run_letters(reader):
    text = " ".join(["baozhengjin"] * 20)  # 220 letters
    assert len(text.replace(" ", "")) > MAX_RUN
    assert reader.to_hanzi(text) == "保证金" * 20


def test_building_is_deterministic():
    a, b = PinyinReader.from_texts(PHRASINGS), PinyinReader.from_texts(list(PHRASINGS))
    for text in ["shensu jindu", "tixian shouxufei", "xian zai", "bzj", "gd jindu"]:
        assert a.to_hanzi(text) == b.to_hanzi(text)


def test_english_glossary():
    assert english_to_mixed("how do i get my deposit back") == "怎么 do i get my 保证金 back"
    assert english_to_mixed("how do i get my deposit back", keep_english=False) == "怎么 保证金"
    assert english_to_mixed("my bank card withdrawal failed") == "my 银行卡 提现 失败"  # longest term first
    assert english_to_mixed("hello there") is None
    assert english_to_mixed("") is None


# --------------------------------------------------------------------------- properties (hypothesis)

PROPERTY = settings(max_examples=300, derandomize=True, database=None, deadline=None)
TEXT = st.text(st.one_of(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789 ü"),
                         st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)), max_size=80)


@PROPERTY
@given(text=TEXT)
def test_to_hanzi_never_raises(reader, text):
    out = reader.to_hanzi(text)
    assert out is None or isinstance(out, str)
    if not any("a" <= ch <= "z" for ch in text):
        assert out is None
