import threading

import numpy as np
import pytest

from knowledge_base.index import FaqIndex


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_best_phrasing_scores_each_faq_once():
    idx = FaqIndex(3)
    idx.replace_faq(1, ["a", "b"], np.stack([unit([1, 0, 0]), unit([0.9, 0.1, 0])]))
    idx.replace_faq(2, ["c"], np.stack([unit([0, 1, 0])]))
    hits = idx.search(unit([1, 0.05, 0]), k=5)
    assert [h.faq_id for h in hits] == [1, 2]
    assert hits[0].phrasing == "a"
    assert len(idx) == 3 and idx.faq_count == 2


def test_an_faq_close_by_several_phrasings_beats_one_with_a_single_stray_match():
    idx = FaqIndex(3)  # pooled over the best two phrasings
    idx.replace_faq(1, ["stray", "far"], np.stack([unit([1, 0.1, 0]), unit([0, 0, 1])]))
    idx.replace_faq(2, ["near", "near too"], np.stack([unit([1, 0.3, 0]), unit([1, 0.35, 0])]))
    hits = idx.search(unit([1, 0.1, 0]), k=2)
    assert [h.faq_id for h in hits] == [2, 1]
    assert hits[1].phrasing == "stray" and hits[1].score < 0.6
    assert FaqIndex(3, pool=1).search(unit([1, 0, 0])) == []  # pool=1 is the plain best phrasing
    single = FaqIndex(3, pool=1)
    single.replace_many([(1, ["stray", "far"], np.stack([unit([1, 0.1, 0]), unit([0, 0, 1])])),
                         (2, ["near", "near too"], np.stack([unit([1, 0.3, 0]), unit([1, 0.35, 0])]))])
    assert single.search(unit([1, 0.1, 0]), k=1)[0].faq_id == 1


def test_the_faq_owning_an_exact_phrasing_is_known():
    idx = FaqIndex(3)
    idx.replace_faq(1, ["a", "b"], np.stack([unit([1, 0, 0]), unit([0, 1, 0])]))
    idx.replace_faq(2, ["c"], np.stack([unit([0, 0, 1])]))
    assert (idx.faq_of("b"), idx.faq_of("c"), idx.faq_of("x")) == (1, 2, None)
    idx.replace_faq(1, ["z"], np.stack([unit([1, 0, 0])]))
    assert (idx.faq_of("a"), idx.faq_of("z")) == (None, 1)
    idx.remove_faq(2)
    assert idx.faq_of("c") is None


def test_replace_swaps_all_phrasings_and_remove_forgets():
    idx = FaqIndex(3)
    idx.replace_faq(1, ["a", "b"], np.stack([unit([1, 0, 0]), unit([0, 1, 0])]))
    idx.replace_faq(1, ["z"], np.stack([unit([0, 0, 1])]))
    assert len(idx) == 1
    assert idx.search(unit([0, 0, 1]))[0].phrasing == "z"
    idx.remove_faq(1)
    assert idx.search(unit([0, 0, 1])) == []


def test_concurrent_searches_never_see_half_an_faq():
    """While FAQ 1 flips between two sets of 5 phrasings, a search sees one set whole."""
    idx = FaqIndex(4)
    set_a = [f"a{i}" for i in range(5)]
    set_b = [f"b{i}" for i in range(5)]
    vec_a = np.stack([unit([1, 0, 0, i * 0.01]) for i in range(5)])
    vec_b = np.stack([unit([0, 1, 0, i * 0.01]) for i in range(5)])
    idx.replace_faq(1, set_a, vec_a)
    stop = threading.Event()
    seen: list[int] = []

    def writer():
        flip = False
        while not stop.is_set():
            idx.replace_faq(1, set_b if flip else set_a, vec_b if flip else vec_a)
            flip = not flip

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(2000):
            with idx._lock:  # inspect the raw state the way a search sees it
                seen.append(idx._index.ntotal)
            assert idx.search(unit([1, 1, 0, 0]), k=1)
    finally:
        stop.set()
        t.join()
    assert set(seen) == {5}


def test_save_and_load_give_the_same_answers(tmp_path):
    idx = FaqIndex(3)
    idx.replace_faq(7, ["甲", "乙"], np.stack([unit([1, 0, 0]), unit([0, 1, 0])]))
    idx.replace_faq(9, ["丙"], np.stack([unit([0, 0, 1])]))
    idx.remove_faq(9)
    idx.replace_faq(9, ["丁"], np.stack([unit([0, 0.2, 1])]))
    idx.save(tmp_path / "index", {"fingerprint": "abc"})
    loaded, meta = FaqIndex.load(tmp_path / "index")
    assert meta == {"fingerprint": "abc"} and FaqIndex.saved_meta(tmp_path / "index") == meta
    for q in ([1, 0.1, 0], [0, 0.1, 1]):
        assert loaded.search(unit(q)) == idx.search(unit(q))
    loaded.replace_faq(11, ["戊"], np.stack([unit([1, 1, 1])]))  # ids keep counting after a load
    assert len(loaded) == 4 and loaded.faq_count == 3


def random_faqs(n_faqs: int, per_faq: int = 6, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for f in range(n_faqs):
        # Like real FAQs: an FAQ's phrasings lie around one point.
        v = (rng.normal(size=dim) + 0.5 * rng.normal(size=(per_faq, dim))).astype(np.float32)
        out.append((f, [f"faq{f}-{i}" for i in range(per_faq)], v / np.linalg.norm(v, axis=1, keepdims=True)))
    return out


def test_small_indexes_stay_exact():
    idx = FaqIndex(16, ann_threshold=1000)
    idx.replace_many(random_faqs(50))
    assert idx.kind == "flat" and len(idx) == 300


def test_large_index_switches_to_ivf_and_still_finds_every_faq():
    faqs = random_faqs(100)
    idx = FaqIndex(16, ann_threshold=500, nprobe=200)
    idx.replace_many(faqs)
    assert idx.kind == "ivf" and len(idx) == 600 and idx.faq_count == 100
    for faq_id, texts, vectors in faqs[::7]:
        hit = idx.search(vectors[2], k=3)[0]
        assert (hit.faq_id, hit.phrasing) == (faq_id, texts[2])


def test_crossing_the_threshold_one_faq_at_a_time_switches_too():
    idx = FaqIndex(16, ann_threshold=60)
    for faq_id, texts, vectors in random_faqs(12):
        idx.replace_faq(faq_id, texts, vectors)
        assert idx.kind == ("ivf" if len(idx) >= 60 else "flat")
    assert idx.kind == "ivf"


def test_ivf_index_edits_by_faq_and_survives_save_and_load(tmp_path):
    faqs = random_faqs(100, seed=1)
    idx = FaqIndex(16, ann_threshold=500, nprobe=200)
    idx.replace_many(faqs)
    faq_id, texts, vectors = faqs[10]
    idx.remove_faq(faq_id)
    assert len(idx) == 594 and all(h.faq_id != faq_id for h in idx.search(vectors[0], k=5))
    new = unit(np.arange(16) % 3)
    idx.replace_faq(faq_id, ["换了的问法"], new.reshape(1, -1))
    assert idx.search(new, k=1)[0].phrasing == "换了的问法"
    idx.save(tmp_path / "ivf", {"fingerprint": "x"})
    loaded, _ = FaqIndex.load(tmp_path / "ivf")
    assert loaded.kind == "ivf" and len(loaded) == 595
    for q in (new, faqs[3][2][1], faqs[50][2][4]):
        assert loaded.search(q, k=3) == idx.search(q, k=3)


def test_the_lexical_bonus_ranks_a_shared_term_first_and_follows_edits():
    idx = FaqIndex(3, pool=1)
    idx.replace_faq(1, ["提现手续费"], np.stack([unit([1, 0.12, 0])]))
    idx.replace_faq(2, ["发票抬头改错了"], np.stack([unit([1, 0.1, 0])]))
    query = unit([1, 0.11, 0.0])
    assert idx.search(query, k=2, text="抬头开错了")[0].faq_id == 1  # no weight: cosine alone
    boosted = idx.search(query, k=2, text="抬头开错了", lexical=0.2)
    assert [h.faq_id for h in boosted] == [2, 1]
    assert boosted[0].score > idx.search(query, k=2)[1].score + 0.03
    idx.replace_faq(2, ["发票怎么开"], np.stack([unit([1, 0.1, 0])]))  # the shared term is gone
    assert idx.search(query, k=2, text="抬头开错了", lexical=0.2)[0].faq_id == 1


def test_a_loaded_index_scores_the_lexical_bonus_like_the_saved_one(tmp_path):
    idx = FaqIndex(3)
    idx.replace_faq(1, ["提现手续费", "提现要钱吗"], np.stack([unit([1, 0.12, 0]), unit([1, 0.2, 0])]))
    idx.replace_faq(2, ["发票抬头改错了", "抬头写错"], np.stack([unit([1, 0.1, 0]), unit([1, 0.3, 0])]))
    idx.save(tmp_path / "idx", {"v": 1})
    loaded, _ = FaqIndex.load(tmp_path / "idx")
    query = unit([1, 0.11, 0.0])
    for a, b in zip(idx.search(query, text="抬头开错了", lexical=0.3), loaded.search(query, text="抬头开错了", lexical=0.3)):
        assert (a.faq_id, a.phrasing) == (b.faq_id, b.phrasing) and a.score == pytest.approx(b.score)
