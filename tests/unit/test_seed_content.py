"""The seed knowledge base is shaped as the product needs it, and stays apart from evaluation questions."""

from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path

import yaml

from api.seed import SEED_DIR, load_yaml, read_seed_faqs
from core.settings import REPO_ROOT
from knowledge_base.normalize import normalize

SYNONYMS = load_yaml(SEED_DIR / "demo.yml").get("synonyms") or {}
FAQS = read_seed_faqs()
KEYS = {f["key"] for f in FAQS}


def phrasings(faq: dict) -> set[str]:
    return {normalize(t, SYNONYMS) for t in [faq["question"], *(faq.get("similar") or [])]}


def questions(path: Path) -> list:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]


def test_at_least_200_faqs_in_at_least_15_categories():
    assert len(FAQS) >= 200
    assert len({f["category"] for f in FAQS}) >= 15


def test_every_faq_has_an_answer_with_steps_and_at_least_four_similar_questions():
    for faq in FAQS:
        assert len(set(faq.get("similar") or [])) >= 4, faq["key"]
        assert len(faq["answer"]) >= 40, faq["key"]
        assert faq.get("tags"), faq["key"]


def test_no_phrasing_belongs_to_two_faqs():
    owners = Counter(t for faq in FAQS for t in phrasings(faq))
    assert [t for t, n in owners.items() if n > 1] == []


def test_calibration_questions_name_real_faqs_and_are_not_kb_phrasings():
    kb = {t for faq in FAQS for t in phrasings(faq)}
    in_scope = questions(REPO_ROOT / "data" / "calibration" / "in_scope.yml")
    assert {r["gold"] for r in in_scope} <= KEYS
    out_of_scope = questions(REPO_ROOT / "data" / "calibration" / "out_of_scope.yml")
    assert [q for q in [r["q"] for r in in_scope] + out_of_scope if normalize(q, SYNONYMS) in kb] == []


def test_benchmark_questions_are_neither_kb_phrasings_nor_calibration_questions():
    """The held-out set measures questions the KB has never seen; calibration must not peek at it either."""
    kb = {t for faq in FAQS for t in phrasings(faq)}
    heldout = [r for path in sorted((REPO_ROOT / "benchmarks" / "data" / "heldout").glob("*.yml"))
               for r in questions(path)]
    assert len(heldout) >= 150 and {r["gold"] for r in heldout} <= KEYS
    test_texts = {normalize(r["q"], SYNONYMS) for r in heldout}
    test_texts |= {normalize(q, SYNONYMS) for q in questions(REPO_ROOT / "benchmarks" / "data" / "out_of_scope.yml")}
    calibration = {normalize(r["q"], SYNONYMS) for r in questions(REPO_ROOT / "data" / "calibration" / "in_scope.yml")}
    calibration |= {normalize(q, SYNONYMS) for q in questions(REPO_ROOT / "data" / "calibration" / "out_of_scope.yml")}
    assert test_texts & kb == set()
    assert test_texts & calibration == set()


def test_no_calibration_question_is_a_near_copy_of_a_benchmark_question():
    """Thresholds are chosen on the calibration set; a reworded test question there would flatter them."""
    heldout = [normalize(r["q"], SYNONYMS) for path in sorted((REPO_ROOT / "benchmarks" / "data" / "heldout").glob("*.yml"))
               for r in questions(path)]
    heldout += [normalize(q, SYNONYMS) for q in questions(REPO_ROOT / "benchmarks" / "data" / "out_of_scope.yml")]
    calibration = [r["q"] for r in questions(REPO_ROOT / "data" / "calibration" / "in_scope.yml")]
    calibration += questions(REPO_ROOT / "data" / "calibration" / "out_of_scope.yml")
    near = []
    for text in calibration:
        matcher = SequenceMatcher(None, "", normalize(text, SYNONYMS))  # b is the side it indexes
        for other in heldout:
            matcher.set_seq1(other)
            if matcher.real_quick_ratio() >= 0.7 and matcher.quick_ratio() >= 0.7 and matcher.ratio() >= 0.7:
                near.append((text, other))
    assert near == []
