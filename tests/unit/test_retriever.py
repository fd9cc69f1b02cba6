import pytest
from sqlalchemy.orm import Session

from api.db import make_engine
from api.kb_service import index_folder
from api.models import Faq
from api.services.faqs import synonyms
from knowledge_base import Decision, FaqIndex, Retriever, Thresholds
from knowledge_base.retriever import CONTEXT_REPEAT_PENALTY, FOLLOW_UP_CHARS


@pytest.fixture(scope="module")
def retriever(embedder, templates, template_index):
    """The seed KB with the default thresholds: the session's saved index, loaded (not embedded again)."""
    engine = make_engine(f"sqlite:///{templates.sqlite()}")
    with Session(engine) as db:
        keys = {f.id: f.key for f in db.query(Faq)}
        questions = {f.id: f.question for f in db.query(Faq)}
        table = synonyms(db)
    engine.dispose()
    index, _ = FaqIndex.load(index_folder(template_index, embedder))
    r = Retriever(embedder, index, synonyms=table)
    r.keys, r.questions = keys, questions
    r.ids = {key: faq_id for faq_id, key in keys.items()}
    return r


def test_a_plain_question_is_answered_with_the_right_faq(retriever):
    result = retriever.search("保证金怎么退")
    assert result.decision == Decision.answer
    assert retriever.keys[result.hits[0].faq_id] == "deposit-refund"


def test_traditional_and_full_width_find_the_same_faq(retriever):
    result = retriever.search("提現失敗是什麼原因？？")
    assert retriever.keys[result.hits[0].faq_id] == "withdraw-failed"


@pytest.mark.parametrize("text", ["", "   ", "😀😀😀", "\x00\x01", "？？？"])
def test_nothing_to_match_is_no_answer(retriever, text):
    result = retriever.search(text)
    assert result.decision == Decision.no_answer and result.hits == []


def test_huge_and_mixed_input_gets_a_decision(retriever):
    for text in ["保证金" * 3400, "deposit 保证金 refund 怎么 退 🙏 please"]:
        result = retriever.search(text)
        assert result.decision in set(Decision)


def test_off_topic_is_not_answered(retriever):
    assert retriever.search("红烧肉怎么做").decision != Decision.answer


def test_incremental_update_reaches_search(retriever):
    retriever.index_faq(999, ["店铺装修模板在哪里换"])
    try:
        assert retriever.search("怎么更换店铺装修模板").hits[0].faq_id == 999
    finally:
        retriever.remove_faq(999)
    assert all(h.faq_id != 999 for h in retriever.search("怎么更换店铺装修模板").hits)


def test_typing_an_faq_phrasing_exactly_is_always_answered(retriever):
    from api.seed import read_seed_faqs

    for faq in read_seed_faqs()[:20]:
        result = retriever.search(faq["similar"][0])
        assert result.decision == Decision.answer and retriever.keys[result.hits[0].faq_id] == faq["key"]


def test_the_calibrated_lexical_weight_reaches_the_search(embedder):
    index = FaqIndex(embedder.dim)
    plain = Retriever(embedder, index, Thresholds(lexical=0.0))
    plain.index_faq(1, ["发票抬头写错了怎么改", "开票信息填错了"])
    plain.index_faq(2, ["提现多久到账", "钱什么时候到银行卡"])
    boosted = Retriever(embedder, index, Thresholds(lexical=0.5))
    question = "抬头写错了能改吗"
    a, b = plain.search(question).hits[0], boosted.search(question).hits[0]
    assert a.faq_id == b.faq_id == 1
    assert b.score > a.score + 0.05  # the shared bigrams 抬头, 写错, 错了 add to the cosine


def test_a_repeated_question_is_embedded_once(embedder):
    class Counting:
        def __init__(self, inner):
            self.inner, self.dim, self.calls = inner, inner.dim, 0

        def encode(self, texts, batch_size=32):
            self.calls += 1
            return self.inner.encode(texts, batch_size)

    counting = Counting(embedder)
    r = Retriever(counting, FaqIndex(embedder.dim))
    r.index_faq(1, ["提现多久到账", "钱什么时候到银行卡"])
    before = counting.calls
    first = r.search("提现要多久？")
    second = r.search("提现要多久")  # the same question once normalised
    assert counting.calls == before + 1
    assert first.hits[0].score == second.hits[0].score and first.hits[0].faq_id == 1


# --------------------------------------------------------------------------- follow-ups (search_in_context)


def _ranked(result) -> list[tuple[int, float]]:
    return [(h.faq_id, h.score) for h in result.hits]


def _after(retriever, key: str) -> tuple[str, int]:
    """The context of a follow-up asked right after FAQ ``key`` was answered: its question and id."""
    faq_id = retriever.ids[key]
    return retriever.questions[faq_id], faq_id


def test_without_context_a_follow_up_is_searched_alone(retriever):
    result, used = retriever.search_in_context("要多久", None)
    assert used is False
    assert _ranked(result) == _ranked(retriever.search("要多久")) and result.decision == retriever.search("要多久").decision


def test_a_long_standalone_question_ignores_the_context(retriever):
    text = "我的店铺保证金退还申请为什么被平台驳回了"
    assert len(retriever.read(text)) > FOLLOW_UP_CHARS and retriever.index.faq_of(retriever.read(text)) is None
    result, used = retriever.search_in_context(text, *_after(retriever, "withdraw-failed"))
    assert used is False
    assert _ranked(result) == _ranked(retriever.search(text))
    assert retriever.keys[result.hits[0].faq_id] == "deposit-refund-rejected"


@pytest.mark.parametrize("text, context, expected", [
    ("被驳回了怎么办", "deposit-refund", "deposit-refund-rejected"),   # alone: product-rejected
    ("要多久", "withdraw-failed", "withdraw-time"),                    # alone: logistics-ship-deadline
])
def test_a_short_follow_up_is_read_with_the_faq_just_answered(retriever, text, context, expected):
    alone = retriever.search(text)
    assert retriever.keys[alone.hits[0].faq_id] != expected
    result, used = retriever.search_in_context(text, *_after(retriever, context))
    assert used is True and result.normalized == alone.normalized
    assert retriever.keys[result.hits[0].faq_id] == expected


def test_a_short_follow_up_that_the_context_settles_is_answered_where_alone_it_is_not(retriever):
    alone = retriever.search("被驳回了怎么办")
    assert alone.decision != Decision.answer
    assert retriever.keys[alone.hits[0].faq_id] != "deposit-refund-rejected"
    result, _ = retriever.search_in_context("被驳回了怎么办", *_after(retriever, "deposit-refund"))
    assert result.decision == Decision.answer


def test_a_long_question_that_leans_on_the_context_uses_it(retriever):
    _, used = retriever.search_in_context("那如果店铺已经关了要等多少天才能退回来呢", *_after(retriever, "deposit-refund"))
    assert used is True


def test_the_faq_just_answered_loses_the_repeat_penalty(retriever):
    question, faq_id = _after(retriever, "deposit-refund")
    plain, used_plain = retriever.search_in_context("要多久", question, None, k=10)
    penalised, used = retriever.search_in_context("要多久", question, faq_id, k=10)
    assert used and used_plain
    before, after = dict(_ranked(plain)), dict(_ranked(penalised))
    assert faq_id in before and faq_id in after
    assert after[faq_id] == pytest.approx(before[faq_id] - CONTEXT_REPEAT_PENALTY, abs=1e-6)
    assert {f: s for f, s in after.items() if f != faq_id} == \
        {f: s for f, s in before.items() if f != faq_id and f in after}


def test_an_exact_kb_phrasing_is_answered_alone_whatever_the_context(retriever):
    context = _after(retriever, "deposit-refund")
    exact = "提现多久能到账"  # one of withdraw-time's own phrasings, short as a follow-up
    assert len(exact) <= FOLLOW_UP_CHARS and retriever.index.faq_of(retriever.read(exact)) == retriever.ids["withdraw-time"]
    result, used = retriever.search_in_context(exact, *context)
    assert used is False and result.decision == Decision.answer
    assert _ranked(result) == _ranked(retriever.search(exact))
    assert retriever.keys[result.hits[0].faq_id] == "withdraw-time"
    # the same question worded otherwise is short enough to be read as a follow-up
    assert retriever.search_in_context("提现多久到账", *context)[1] is True
