"""Importing 5,000 FAQs through the workbench's import (api/services/faq_io.py): the dry-run report, the
all-or-nothing apply, and the export → import round trip, as XLSX and as CSV, on a fresh seeded SQLite database.

    .venv/app/bin/python -m benchmarks.kb_import            # ~1–2 minutes on 2 cores

The FAQs are imported as drafts, so the figure is the import itself; publishing them would add embedding every
phrasing into the index (the seed KB's 6,323 phrasings take ~50 s on 2 cores; see BENCHMARKS.md).
"""

from __future__ import annotations

import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.db import make_engine
from api.models import Faq
from api.services import faq_io
from core.settings import REPO_ROOT
from devtools.prepare import ensure_database

RESULTS = REPO_ROOT / "benchmarks" / "results" / "kb_import.md"
N = 5_000
SIMILAR = 6


def rows(n: int = N) -> list[list[str]]:
    """n distinct FAQs with SIMILAR similar questions each, a markdown answer, tags, in 25 categories."""
    out = []
    for i in range(n):
        topic = f"第{i}号业务"
        similar = "\n".join(f"{topic}的问题{j}怎么处理" for j in range(SIMILAR))
        answer = f"关于{topic}：\n\n1. 进入「商家后台 → 服务」\n2. 按提示提交\n\n详见 [规则](https://example.com/r/{i})"
        out.append(["", f"{topic}要怎么办理？", similar, answer, f"分类{i % 25}", "批量、导入", "", "草稿"])
    return out


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def run_format(fmt: str, tmp: Path) -> dict:
    url = f"sqlite:///{tmp / f'bench-{fmt}.db'}"
    ensure_database(url)
    engine = make_engine(url)
    data, t_write = timed(lambda: faq_io.write_table(rows(), fmt))
    with Session(engine) as db:
        report, t_dry = timed(lambda: faq_io.read_import(db, data, f"faqs.{fmt}"))
        assert report.count("new") == N and report.ok

        def apply():
            faq_io.apply_import(db, report, "bench")
            db.commit()

        _, t_apply = timed(apply)
        total = db.scalar(select(func.count()).select_from(Faq))
    with Session(engine) as db:
        exported, t_export = timed(lambda: faq_io.export_faqs(db, fmt))
        again, t_again = timed(lambda: faq_io.read_import(db, exported, f"faqs.{fmt}"))
    engine.dispose()
    assert again.count("unchanged") == total and again.count("new") == again.count("changed") == 0
    return {"fmt": fmt, "bytes": len(data), "write": t_write, "dry": t_dry, "apply": t_apply,
            "export": t_export, "again": t_again, "total": total}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_format(fmt, Path(tmp)) for fmt in ("xlsx", "csv")]
    lines = [
        "# Importing 5,000 FAQs (workbench import, `benchmarks/kb_import.py`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}, SQLite; "
        f"{N:,} new FAQs × {SIMILAR} similar questions, imported as drafts into the seeded database (216 FAQs).",
        "",
        "| format | file | dry run (read + check) | apply (one transaction) | dry run + apply | export all | "
        "re-import dry run (all unchanged) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['fmt'].upper()} | {r['bytes'] / 1e6:.1f} MB | {r['dry']:.1f} s | {r['apply']:.1f} s | "
                     f"{r['dry'] + r['apply']:.1f} s | {r['export']:.1f} s | {r['again']:.1f} s "
                     f"({r['total']:,} unchanged) |")
    lines += ["", "Apply writes each FAQ with its similar questions, a version row and a knowledge-base revision "
              "(kb_changes), all in one transaction; drafts are not embedded. The HTTP route adds the upload and a "
              "`refresh_faq` per FAQ after the commit (for drafts: a removal from the index, no embedding)."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
