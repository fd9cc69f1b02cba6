import math

import pytest

from knowledge_base.lexical import Lexicon, bigrams


def test_bigrams_stay_within_runs_and_keep_single_characters():
    assert bigrams("保证金 退") == ["保证", "证金", "退"]
    assert bigrams("") == [] and bigrams("   ") == []


def test_a_query_scores_one_against_its_own_copy_and_zero_against_a_stranger():
    lex = Lexicon()
    lex.add(1, "保证金怎么退")
    lex.add(2, "提现多久到账")
    same, other, unknown = lex.scores("保证金怎么退", [1, 2, 99])
    assert same == pytest.approx(1.0)
    assert other == 0.0 and unknown == 0.0
    assert lex.scores("", [1, 2]) == [0.0, 0.0]
    assert lex.scores("保证金", []) == []


def test_a_shared_rare_term_counts_more_than_a_shared_common_one():
    lex = Lexicon()
    for i, text in enumerate(["怎么申请发票", "怎么修改抬头", "怎么提现", "怎么开店"]):
        lex.add(i, text)
    rare, common = lex.scores("发票抬头怎么改", [0, 2])
    assert rare > common > 0  # 发票 is in one phrasing, 怎么 in all four


def test_removing_and_replacing_update_the_frequencies():
    lex = Lexicon()
    lex.add(1, "货款冻结")
    lex.add(2, "货款冻结怎么办")
    before = lex.scores("货款冻结", [2])[0]
    lex.remove(1)  # 货款 and 冻结 become rarer, so a match on them weighs more
    assert lex.scores("货款冻结", [2])[0] > before
    assert len(lex) == 1 and lex.scores("货款", [1]) == [0.0]
    lex.add(2, "发票抬头")  # the same id again replaces the old text
    assert lex.scores("货款冻结", [2]) == [0.0] and len(lex) == 1
    lex.remove(2)
    lex.remove(2)  # removing twice is harmless
    assert len(lex) == 0 and lex._df == {} and lex._total_length == 0


def test_a_ten_thousand_character_query_is_scored_finitely():
    lex = Lexicon()
    lex.add(1, "保证金怎么退")
    (score,) = lex.scores("保证金" * 3400, [1])
    assert math.isfinite(score) and 0 < score < 1
