from knowledge_base.normalize import apply_synonyms, normalize


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
