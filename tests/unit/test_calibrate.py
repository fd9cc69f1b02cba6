import numpy as np

from kb_training.calibrate import Probe, ProbeSet, choose, heldout_probes, probes
from knowledge_base.lexical import bigrams
from knowledge_base.retriever import Thresholds


def test_thresholds_separate_in_scope_from_out_of_scope():
    right = [Probe(1, [1, 2, 3], [0.95, 0.90, 0.89]) for _ in range(40)]
    close_call = [Probe(2, [1, 2, 3], [0.91, 0.905, 0.88]) for _ in range(10)]  # wrong top-1, right in top 3
    off_topic = [Probe(None, [4, 5, 6], [0.86, 0.85, 0.84]) for _ in range(20)]
    t, outcome = choose(right + close_call + off_topic)
    assert 0.86 < t.clarify <= 0.91 and t.answer <= 0.95
    assert outcome.oos_answer == 0 and outcome.oos_clarify == 0
    assert outcome.wrong_answer == 0 and outcome.right_answer == 40 / 50
    assert outcome.right_in_clarify == 10 / 50


def test_evaluate_counts_each_kind_of_outcome():
    probes = ProbeSet([Probe(1, [1], [0.99]), Probe(1, [2, 1], [0.99, 0.5]), Probe(None, [3], [0.99])])
    o = probes.evaluate(Thresholds(answer=0.9, margin=0.0, clarify=0.8))
    assert (o.right_answer, o.wrong_answer, o.oos_answer) == (0.5, 0.5, 1.0)


def test_answers_as_much_as_the_wrong_answer_cap_allows():
    sure = [Probe(1, [1, 2], [0.95, 0.80]) for _ in range(80)]
    unsure_right = [Probe(1, [1, 2], [0.90, 0.75]) for _ in range(20)]
    unsure_wrong = [Probe(1, [2, 1], [0.90, 0.75]) for _ in range(20)]
    off_topic = [Probe(None, [3, 4], [0.60, 0.50]) for _ in range(20)]
    probes = sure + unsure_right + unsure_wrong + off_topic
    strict, outcome = choose(probes)  # 3% cap: the unsure band would make 1/6 of the answers wrong
    assert 0.90 < strict.answer <= 0.95 and outcome.right_answer == 80 / 120 and outcome.wrong_answer == 0
    loose, outcome = choose(probes, max_wrong=0.2)
    assert loose.answer <= 0.90 and outcome.right_answer == 100 / 120 and outcome.wrong_answer == 20 / 120
    assert strict.clarify > 0.60 and outcome.oos_clarify == 0  # off-topic questions get no choices either


class BigramEmbedder:
    """A stand-in embedding: hashed character bigrams, L2-normalised (fast, deterministic)."""

    dim = 64

    def encode(self, texts):
        import zlib

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for gram in bigrams(text) or [text]:
                out[row, zlib.crc32(gram.encode()) % self.dim] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


FAQS = [(10, ["保证金怎么退", "押金退还流程", "保证金多久退回来"]),
        (20, ["提现多久到账", "提现什么时候到", "钱提出来要几天"]),
        (30, ["发票抬头写错了", "发票抬头怎么改", "开票信息改错"])]


def test_leave_one_out_probes_never_see_the_question_itself_and_cover_every_weight():
    sets = probes(BigramEmbedder(), FAQS, ["今天天气怎么样"], lexicals=(0.0, 0.5))
    assert set(sets) == {0.0, 0.5}
    for items in sets.values():
        assert len(items) == 6 + 1  # two similar questions per FAQ, one out-of-scope question
        assert [p.gold for p in items[:6]] == [10, 10, 20, 20, 30, 30] and items[-1].gold is None
        assert all(p.scores[0] < 1.0 for p in items[:6])  # an indexed copy of itself would score 1.0
    plain, boosted = sets[0.0], sets[0.5]
    assert all(b.scores[0] >= a.scores[0] for a, b in zip(plain, boosted))
    assert any(b.scores[0] > a.scores[0] for a, b in zip(plain, boosted))


def test_heldout_probes_score_new_questions_against_the_indexed_phrasings():
    indexed = [(faq_id, texts) for faq_id, texts in FAQS]
    sets = heldout_probes(BigramEmbedder(), indexed, [(30, "抬头写错了能改吗"), (10, "保证金怎么退")], ["外卖"],
                          lexicals=(0.0, 0.3))
    typed, exact, off_topic = sets[0.3]
    assert typed.faqs[0] == 30 and exact.faqs[0] == 10
    # The phrasing typed exactly gains 0.3 × BM25 1.0, averaged with the FAQ's second-best phrasing's gain.
    assert exact.scores[0] - sets[0.0][1].scores[0] >= 0.15 - 1e-6
    assert off_topic.gold is None and off_topic.scores[0] < typed.scores[0]
