"""The calibration questions (data/calibration/): real-style in-scope questions and out-of-scope ones.

They calibrate thresholds and judge tuned models; the benchmark's held-out questions (benchmarks/data/) stay
apart and are never used here.
"""

from __future__ import annotations

import yaml

from core.settings import REPO_ROOT
from knowledge_base.normalize import normalize

CALIBRATION_OOS = REPO_ROOT / "data" / "calibration" / "out_of_scope.yml"
CALIBRATION_IN_SCOPE = REPO_ROOT / "data" / "calibration" / "in_scope.yml"


def out_of_scope() -> list[str]:
    return list(yaml.safe_load(CALIBRATION_OOS.read_text(encoding="utf-8"))["questions"])


def load(ids: dict[str, int], synonyms: dict[str, str]) -> tuple[list[tuple[int, str]], list[str]]:
    """The real-style questions as (FAQ id, normalised text), for the FAQs in ``ids`` (key → id), and the
    out-of-scope questions, normalised."""
    rows = yaml.safe_load(CALIBRATION_IN_SCOPE.read_text(encoding="utf-8"))["questions"]
    real = [(ids[r["gold"]], t) for r in rows if r["gold"] in ids and (t := normalize(r["q"], synonyms))]
    return real, [t for t in (normalize(q, synonyms) for q in out_of_scope()) if t]
