"""The bot's data is valid and its test stories pass (`rasa data validate`, `rasa test core`)."""

import json
import subprocess

import pytest

from core.settings import REPO_ROOT, get_settings
from devtools.prepare import RASA_BIN, rasa_env, rasa_model_path

pytestmark = pytest.mark.e2e


def rasa(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(RASA_BIN), *args], cwd=REPO_ROOT, env=rasa_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_bot_data_validates():
    result = rasa("data", "validate", "--domain", "bot/domain.yml", "--data", "bot/data", "--config", "config.yml",
                  )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "No story structure conflicts found" in result.stdout + result.stderr


def test_every_test_story_passes(tmp_path):
    out = tmp_path / "results"
    result = rasa("test", "core", "--stories", "bot/tests", "--model", str(rasa_model_path(get_settings())),
                  "--out", str(out), "--fail-on-prediction-errors")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads((out / "story_report.json").read_text(encoding="utf-8"))
    assert report["conversation_accuracy"]["accuracy"] == 1.0
    assert report["conversation_accuracy"]["total"] >= 25
