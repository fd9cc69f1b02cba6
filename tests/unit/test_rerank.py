import random
from pathlib import Path

import numpy as np
import pytest

from knowledge_base import rerank
from knowledge_base.finetune import KbFaq
from knowledge_base.rerank import Pair, RerankRecipe, kb_pairs

FAQS = [
    KbFaq("withdraw-time", "提现", ("提现多久能到账", "钱提出来什么时候到", "取钱要等多久")),
    KbFaq("withdraw-fee", "提现", ("提现要手续费吗", "提现扣钱吗", "转到银行卡收费吗")),
    KbFaq("deposit-refund", "保证金", ("保证金怎么退", "退店后保证金什么时候退回")),
    KbFaq("lonely", "保证金", ("只有一个问法",)),
]


def _vectors(seed: int = 0) -> np.ndarray:
    """Unit vectors where phrasings of one FAQ lie close together, FAQ 1 closest to FAQ 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(FAQS), 16))
    centres[1] = centres[0] + 0.3 * rng.normal(size=16)
    rows = [centres[n] + 0.05 * rng.normal(size=16) for n, f in enumerate(FAQS) for _ in f.phrasings]
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_kb_pairs_pair_each_similar_question_with_its_own_and_rival_standard_questions():
    pairs = kb_pairs(FAQS, _vectors(), random.Random(1), hard=2, random_negatives=0)
    owner = {p: f for f in FAQS for p in f.phrasings}
    titles = {f.phrasings[0] for f in FAQS}
    similar = [p for f in FAQS for p in f.phrasings[1:]]
    assert {p.a for p in pairs} == set(similar)  # standard questions are not anchors
    for text in similar:
        mine = [p for p in pairs if p.a == text]
        positives = [p for p in mine if p.label == 1.0]
        assert len(positives) == 1 and positives[0].b == owner[text].phrasings[0]
        negatives = [p for p in mine if p.label == 0.0]
        assert len(negatives) == 2 and all(n.b in titles and owner[n.b] is not owner[text] for n in negatives)
    # the embedding's closest rival comes first: withdraw-time's questions meet withdraw-fee's title
    first_negative = next(p for p in pairs if p.a == "取钱要等多久" and p.label == 0.0)
    assert first_negative.b == "提现要手续费吗"


def test_kb_pairs_add_random_negatives_from_other_faqs():
    with_random = kb_pairs(FAQS, _vectors(), random.Random(3), hard=1, random_negatives=3)
    without = kb_pairs(FAQS, _vectors(), random.Random(3), hard=1, random_negatives=0)
    owner = {p: f for f in FAQS for p in f.phrasings}
    assert len(with_random) > len(without)
    assert all(owner[p.a] is not owner[p.b] for p in with_random if p.label == 0.0)


@pytest.fixture(scope="module")
def trained(model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("cross") / "ce"
    steps = []
    pairs = [Pair("提现多久能到账", "钱提出来什么时候到", 1.0), Pair("提现多久能到账", "保证金怎么退", 0.0)] * 4
    rerank.train(Path(model_path), out, lambda rng: list(pairs), RerankRecipe(batch_size=4),
                 info={"key": "r1"}, progress=lambda done, total, loss: steps.append((done, total, loss)))
    return out, steps


def test_a_trained_cross_encoder_is_saved_whole_and_scores_pairs(trained):
    out, steps = trained
    assert steps[-1][0] == steps[-1][1] == 2 and all(np.isfinite(s[2]) for s in steps)
    assert rerank.is_current(out, "r1") and not rerank.is_current(out, "r2")
    assert not out.with_name(out.name + ".partial").exists()
    model = rerank.CrossEncoder(out, threads=2)
    pairs = [("提现多久能到账", "钱提出来什么时候到"), ("提现多久能到账", "保证金怎么退"), ("", "x" * 5000)]
    scores = model.score(pairs, batch_size=2)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert scores[0] != scores[1]  # it reads the second question, not only the first
    again = rerank.CrossEncoder(out, threads=2).score(pairs)
    np.testing.assert_allclose(scores, again, atol=1e-5)  # the head is saved with the encoder
    assert model.score([]).shape == (0,)
