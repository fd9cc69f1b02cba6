"""Several embedding models scored as one (settings kb_mean_with_base / comma-separated embedding_model)."""

import numpy as np
import pytest

from knowledge_base import FaqIndex, MeanEmbedder, ModelMissingError, load_models

from .test_calibrate import BigramEmbedder


class Stand(BigramEmbedder):
    """A bigram stand-in with its own hashing, so that two of them disagree."""

    prefix = "query: "

    def __init__(self, salt: str, dim: int):
        self.salt, self.dim, self.name, self.fingerprint = salt, dim, f"stand-{salt}", f"fp-{salt}"

    def encode(self, texts, batch_size=32):
        return super().encode([self.salt + t for t in texts])


TEXTS = ["保证金怎么退", "押金退还流程", "提现多久到账", "发票抬头写错了"]


def test_inner_product_of_mean_vectors_is_the_mean_of_the_models_cosines():
    a, b = Stand("x", 64), Stand("y", 32)
    mean = MeanEmbedder([a, b])
    va, vb, vm = a.encode(TEXTS), b.encode(TEXTS), mean.encode(TEXTS)
    assert vm.shape == (len(TEXTS), 96) and vm.dtype == np.float32 and mean.dim == 96
    assert np.allclose(np.linalg.norm(vm, axis=1), 1.0, atol=1e-5)  # still unit vectors: cosine = inner product
    expected = (va @ va.T + vb @ vb.T) / 2
    assert np.allclose(vm @ vm.T, expected, atol=1e-5)
    assert not np.allclose(va @ va.T, vb @ vb.T)  # the two models really disagree, so the mean is a third thing


def test_index_over_mean_vectors_ranks_by_the_mean_score():
    a, b = Stand("x", 64), Stand("y", 32)
    mean = MeanEmbedder([a, b])
    index = FaqIndex(mean.dim)
    index.replace_many([(1, TEXTS[:2], mean.encode(TEXTS[:2])), (2, TEXTS[2:], mean.encode(TEXTS[2:]))])
    query = "保证金退还"
    hits = index.search(mean.encode([query])[0], k=2)
    assert hits[0].faq_id == 1
    mean_cosines = ((a.encode([query]) @ a.encode(TEXTS).T)[0] + (b.encode([query]) @ b.encode(TEXTS).T)[0]) / 2
    # each FAQ scores the mean of its two best phrasings (POOL), here both of its phrasings
    assert hits[0].score == pytest.approx(mean_cosines[:2].mean(), abs=1e-5)
    assert hits[1].score == pytest.approx(mean_cosines[2:].mean(), abs=1e-5)


def test_identity_follows_every_part():
    one, two = MeanEmbedder([Stand("x", 64), Stand("y", 32)]), MeanEmbedder([Stand("x", 64), Stand("z", 32)])
    assert one.name == "stand-x+stand-y" and one.prefix == "query: "
    assert one.fingerprint != two.fingerprint  # a changed second model invalidates a saved index
    with pytest.raises(ValueError):
        MeanEmbedder([])


def test_load_models_reads_one_folder_or_a_comma_list(model_path, tmp_path):
    single = load_models(model_path, prefix="query: ", threads=1)
    assert not isinstance(single, MeanEmbedder)
    pair = load_models(f"{model_path}, {model_path}", prefix="query: ", threads=1)
    assert isinstance(pair, MeanEmbedder) and pair.dim == 2 * single.dim
    vectors = pair.encode(TEXTS)
    assert np.allclose(vectors @ vectors.T, single.encode(TEXTS) @ single.encode(TEXTS).T, atol=1e-4)
    with pytest.raises(ModelMissingError):
        load_models(f"{model_path},{tmp_path / 'missing'}")
