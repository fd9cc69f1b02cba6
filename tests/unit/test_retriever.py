import pytest
from sqlalchemy.orm import Session

from api.db import make_engine
from api.kb_service import index_folder
from api.models import Faq
from api.services.faqs import synonyms
from knowledge_base import Decision, FaqIndex, Retriever, Thresholds


@pytest.fixture(scope="module")
def retriever(embedder, templates, template_index):
    """The seed KB with the default thresholds: the session's saved index, loaded (not embedded again)."""
    engine = make_engine(f"sqlite:///{templates.sqlite()}")
    with Session(engine) as db:
        keys = {f.id: f.key for f in db.query(Faq)}
        table = synonyms(db)
    engine.dispose()
    index, _ = FaqIndex.load(index_folder(template_index, embedder))
    r = Retriever(embedder, index, synonyms=table)
    r.keys = keys
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
