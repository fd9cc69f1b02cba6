"""Set-up decides what to redo from what changed."""

import yaml

from core.settings import REPO_ROOT
from devtools import prepare


def test_every_file_rasa_train_reads_decides_a_retrain():
    config = yaml.safe_load((REPO_ROOT / "config.yml").read_text(encoding="utf-8"))
    read = [REPO_ROOT / "config.yml", REPO_ROOT / "bot" / "domain.yml", REPO_ROOT / "bot" / "data"]
    read += [REPO_ROOT / c[key] for c in config["pipeline"] for key in ("dictionary_path",) if c.get(key)]
    for path in read:
        assert any(path == p or p in path.parents for p in prepare.RASA_INPUTS), path


def test_editing_the_jieba_dictionary_changes_the_retrain_key(tmp_path, monkeypatch):
    dictionary = tmp_path / "bot" / "jieba_userdict"
    dictionary.mkdir(parents=True)
    (dictionary / "userdict.txt").write_text("保证金 10 n\n", encoding="utf-8")
    monkeypatch.setattr(prepare, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(prepare, "RASA_INPUTS", [dictionary])
    before = prepare.rasa_inputs_hash()
    (dictionary / "userdict.txt").write_text("保证金 10 n\n云仓 10 n\n", encoding="utf-8")
    assert prepare.rasa_inputs_hash() != before


def test_set_up_serves_the_unmodified_model_until_a_tuned_one_is_promoted(tmp_path):
    from core.settings import Settings
    from knowledge_base import serving

    settings = Settings(_env_file=None, var_dir=tmp_path)
    assert settings.model_path == str(settings.default_model_dir)
    tuned = tmp_path / "models" / "kb-1"
    serving.write(settings.serving_file, serving.Serving(str(tuned), "2026-12-04T00:00:00+00:00", "1"))
    assert settings.model_path == str(settings.default_model_dir)  # a pointer to a missing folder is ignored
    tuned.mkdir(parents=True)
    (tuned / "modules.json").write_text("[]")
    assert settings.model_path == str(tuned)
    fixed = Settings(_env_file=None, var_dir=tmp_path, embedding_model="/models/mine")
    assert fixed.model_path == "/models/mine"  # the setting always wins
