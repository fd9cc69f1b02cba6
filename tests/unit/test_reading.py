"""How the retriever reads a question before searching (knowledge_base/reading.py): pinyin and English merchant
terms in the KB's words, the direction book lowering the sibling FAQ that points the other way, and both rebuilt
from the index after it changes."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.orm import Session

from api.db import make_engine
from api.kb_service import index_folder
from api.models import Faq
from api.services.faqs import synonyms
from knowledge_base import FaqIndex, Retriever
from knowledge_base.direction import PENALTY
from knowledge_base.reading import QueryReading


@pytest.fixture(scope="module")
def retriever(embedder, templates, template_index):
    """The seed KB (the session's saved index, loaded, not embedded again), its FAQ keys by id."""
    engine = make_engine(f"sqlite:///{templates.sqlite()}")
    with Session(engine) as db:
        keys = {f.id: f.key for f in db.query(Faq)}
        table = synonyms(db)
    engine.dispose()
    index, _ = FaqIndex.load(index_folder(template_index, embedder))
    r = Retriever(embedder, index, synonyms=table)
    r.keys, r.ids = keys, {key: faq_id for faq_id, key in keys.items()}
    return r


def _ranked(result) -> list[tuple[int, float]]:
    return [(h.faq_id, h.score) for h in result.hits]


# --------------------------------------------------------------------------- pinyin and English


@pytest.mark.parametrize("typed, chinese", [
    ("bzjzenmetui", "保证金怎么退"),
    ("bzj zenme tui", "保证金怎么退"),
    ("baozhengjin zenme tui", "保证金怎么退"),
    ("bzj怎么退", "保证金怎么退"),
    ("tixian duojiu daozhang", "提现多久到账"),
])
def test_a_pinyin_question_is_read_into_chinese_and_answered_like_it(retriever, typed, chinese):
    assert retriever.read(typed) == chinese
    result, expected = retriever.search(typed), retriever.search(chinese)
    assert result.decision == expected.decision
    assert _ranked(result) == _ranked(expected)


def test_a_pinyin_question_reaches_the_right_faq(retriever):
    assert retriever.keys[retriever.search("bzjzenmetui").hits[0].faq_id] == "deposit-refund"


@pytest.mark.parametrize("english, kb_words, gone", [
    ("how do i get my deposit back", ["保证金"], "deposit"),
    ("deposit refund", ["保证金", "退款"], "deposit"),
    ("withdrawal failed", ["提现", "失败"], "withdrawal"),
    ("can i change my bank card", ["银行卡"], "bank card"),
])
def test_english_merchant_terms_are_replaced_with_the_kbs_words(retriever, english, kb_words, gone):
    read = retriever.read(english)
    assert all(word in read for word in kb_words) and gone not in read


def test_an_english_question_finds_the_faq_its_terms_name(retriever):
    assert retriever.keys[retriever.search("how do i get my deposit back").hits[0].faq_id] == "deposit-refund"


@pytest.mark.parametrize("text", ["保证金怎么退？", "提現失敗是什麼原因", "查一下GD2611180001的进度", "iphone 壳子能卖吗",
                                  "VIP会员怎么开"])
def test_chinese_codes_and_brand_words_are_left_as_normalised(retriever, text):
    assert retriever.read(text) == retriever.prepare(text)


# --------------------------------------------------------------------------- direction


def _raw(retriever, text: str, k: int = 5):
    """The index's hits for the question before the direction book sees them."""
    normalized = retriever.read(text)
    vector = retriever.embedder.encode([normalized])[0]
    return retriever.index.search(vector, k=k, text=normalized, lexical=retriever.thresholds.lexical)


def test_the_sibling_pointing_the_other_way_is_lowered_below_the_right_one(retriever):
    text = "买家说没收到货"  # the parcel went out to a buyer: not a return the merchant is waiting for
    raw = {h.faq_id: h.score for h in _raw(retriever, text)}
    result = retriever.search(text)
    adjusted = {h.faq_id: h.score for h in result.hits}
    returned, refund = retriever.ids["aftersale-not-received-return"], retriever.ids["aftersale-refund-only"]
    assert raw[returned] > raw[refund]                       # the embedding alone picks the wrong side
    assert adjusted[returned] == pytest.approx(raw[returned] - PENALTY, abs=1e-6)
    assert adjusted[refund] == raw[refund]                    # no shipment direction: untouched
    assert retriever.keys[result.hits[0].faq_id] == "aftersale-refund-only"


def test_a_complaint_received_lowers_the_faq_about_filing_one(retriever):
    raw = {h.faq_id: h.score for h in _raw(retriever, "有人投诉我侵权")}
    adjusted = {h.faq_id: h.score for h in retriever.search("有人投诉我侵权").hits}
    filed, received = retriever.ids["ip-file-complaint"], retriever.ids["ip-counter-notice"]
    assert adjusted[filed] == pytest.approx(raw[filed] - PENALTY, abs=1e-6)
    assert adjusted[received] == raw[received]


def test_a_question_without_a_direction_keeps_the_index_order(retriever):
    text = "怎么添加子账号"
    assert [(h.faq_id, h.score) for h in _raw(retriever, text)] == _ranked(retriever.search(text))


# --------------------------------------------------------------------------- rebuilt after the index changes


def _wait_until_built(reading: QueryReading, revision: int, timeout: float = 10.0) -> None:
    """Poll (bounded) for the background rebuild of the pinyin reader to reach ``revision``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reading.pinyin.revision == revision:
            return
        time.sleep(0.005)
    raise AssertionError(f"the reader was not rebuilt for revision {revision} within {timeout} s")


def test_nothing_is_built_before_a_question_needs_it_and_warm_builds_both(embedder):
    r = Retriever(embedder, FaqIndex(embedder.dim))
    r.index_faq(1, ["提现多久到账", "钱什么时候到银行卡"])
    r.search("提现多久到账")  # no latin letters, no direction cue: neither is needed
    assert r.reading.pinyin.revision is None and r.reading.directions.revision is None
    r.reading.warm()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and None in (r.reading.pinyin.revision, r.reading.directions.revision):
        time.sleep(0.005)
    assert r.reading.pinyin.revision == r.index.revision == r.reading.directions.revision


def test_an_edit_costs_nothing_until_a_question_needs_the_reader(embedder):
    r = Retriever(embedder, FaqIndex(embedder.dim))
    r.index_faq(1, ["提现多久到账"])
    r.read("tixian duojiu daozhang")
    built = r.reading.pinyin.revision
    r.index_faq(2, ["保证金怎么退"])
    r.search("保证金怎么退")  # a Chinese question does not rebuild the reader
    assert r.reading.pinyin.revision == built < r.index.revision


def test_a_new_faq_reaches_the_pinyin_reader_after_the_rebuild(embedder):
    r = Retriever(embedder, FaqIndex(embedder.dim))
    r.index_faq(1, ["提现多久到账", "钱什么时候到银行卡"])
    r.index_faq(2, ["保证金怎么退", "押金怎么拿回来"])
    typed = "zhibo daihuo zenme kaitong"
    assert "直播" not in r.read(typed)  # the KB has no such words yet: built in line, at this revision
    before = r.index.revision
    r.index_faq(3, ["直播带货怎么开通", "怎么开直播卖货"])
    assert r.index.revision > before
    assert "直播" not in r.read(typed)  # the previous reader serves while the new one is built
    _wait_until_built(r.reading, r.index.revision)
    assert r.read(typed) == "直播带货怎么开通"
    result = r.search(typed)
    assert result.hits[0].faq_id == 3 and _ranked(result) == _ranked(r.search("直播带货怎么开通"))


def test_a_removed_faq_leaves_the_reader_after_the_rebuild(embedder):
    r = Retriever(embedder, FaqIndex(embedder.dim))
    r.index_faq(1, ["提现多久到账"])
    r.index_faq(3, ["直播带货怎么开通", "怎么开直播卖货"])
    typed = "zhibo daihuo zenme kaitong"
    assert r.read(typed) == "直播带货怎么开通"
    r.remove_faq(3)
    r.read(typed)  # starts the rebuild
    _wait_until_built(r.reading, r.index.revision)
    assert "直播" not in r.read(typed)
