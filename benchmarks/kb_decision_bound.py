"""How far the retriever's decision rule can go on its own scores: the most held-out questions it could answer
outright and right while answering at most 2% wrongly, if its thresholds were chosen on the held-out set itself.

    .venv/app/bin/python -m benchmarks.kb_decision_bound        # ~1 minute (embeds the KB once)

The product's rule answers when the best FAQ scores at least ``answer`` and leads the runner-up by ``margin``
(``Retriever.decide``). This script scores the held-out questions once with the served model and sweeps both
thresholds over a grid; it is an upper bound (an oracle: the thresholds see the test answers), so it says what
no calibration of this rule with these scores can beat. The shipped thresholds are calibrated elsewhere
(``data/kb_thresholds.json``). Writes ``benchmarks/results/kb_decision_bound.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import yaml

from api.kb_service import thresholds_for

from . import kb_common as kc
from .kb_eval import DATA_DIR

MAX_WRONG = 0.02


def main() -> int:
    faqs = kc.seed_faqs()
    key_id = {f["key"]: i for i, f in enumerate(faqs)}
    embedder = kc.load_embedder()
    retriever = kc.e5_retriever(embedder, faqs)
    shipped = thresholds_for(embedder.name)
    rows = []
    for path in sorted((DATA_DIR / "heldout").glob("*.yml")):
        for q in yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]:
            result = retriever.search(q["q"], k=5)
            hits = result.hits
            rows.append((hits[0].score, hits[0].score - (hits[1].score if len(hits) > 1 else -1.0),
                         hits[0].faq_id == key_id[q["gold"]], key_id[q["gold"]] in [h.faq_id for h in hits[:3]]))
    top, lead, right, top3 = (np.array(x) for x in zip(*rows))
    n = len(rows)
    best = (0.0, 0.0, None, None)
    for answer in np.arange(0.70, 1.0, 0.0025):
        for margin in np.arange(0.0, 0.06, 0.001):
            answered = (top >= answer) & (lead >= margin)
            r, w = (answered & right).sum() / n, (answered & ~right).sum() / n
            if w <= MAX_WRONG and r > best[0]:
                best = (r, w, answer, margin)
    answered = (top >= shipped.answer) & (lead >= shipped.margin)
    lines = [
        f"# The decision rule's ceiling on the held-out set ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {kc.machine()})\n",
        f"Served model `{embedder.name}`, {n} held-out questions, product scoring (pooling, lexical weight "
        f"{shipped.lexical}, pinyin/English reading, direction).\n",
        "| | answered right | answered wrong |",
        "|---|---|---|",
        f"| shipped thresholds (answer {shipped.answer:.4f}, margin {shipped.margin:.4f}) | "
        f"{(answered & right).sum() / n:.3f} | {(answered & ~right).sum() / n:.3f} |",
        f"| **oracle**: best thresholds chosen on these very questions, wrong ≤ {MAX_WRONG:.0%} (answer "
        f"{best[2]:.4f}, margin {best[3]:.3f}) | **{best[0]:.3f}** | {best[1]:.3f} |",
        f"| answering every question (top-1) | {right.mean():.3f} | {1 - right.mean():.3f} |",
        "",
        f"Top-3 (the most a 您是想问 of three choices can reach): {top3.mean():.3f}. "
        f"Median lead of a right top-1 over the runner-up: {np.median(lead[right]):.4f}; of a wrong one: "
        f"{np.median(lead[~right]):.4f}.",
    ]
    text = "\n".join(lines) + "\n"
    kc.write_result("kb_decision_bound.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
