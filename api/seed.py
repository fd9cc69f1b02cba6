"""Load the demo data and the seed knowledge base into the database (idempotent)."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import REPO_ROOT

from .models import Faq, FaqQuestion, FaqStatus, Merchant

SEED_DIR = REPO_ROOT / "data" / "seed"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def seed_demo(db: Session, path: Path = SEED_DIR / "demo.yml") -> int:
    """Create the demo merchants that are missing; returns how many were added."""
    added = 0
    for row in load_yaml(path)["merchants"]:
        if db.scalar(select(Merchant).where(Merchant.code == row["code"])) is None:
            db.add(Merchant(code=row["code"], name=row["name"]))
            added += 1
    return added


def read_seed_faqs(folder: Path = SEED_DIR / "faqs") -> list[dict]:
    """Every FAQ of the seed files (one file per category), checked for the fields set-up needs."""
    rows: list[dict] = []
    seen: set[str] = set()
    for path in sorted(folder.glob("*.yml")):
        data = load_yaml(path)
        for row in data["faqs"]:
            row = {"category": data["category"], **row}
            missing = {"key", "question", "answer"} - set(row)
            if missing or row["key"] in seen:
                raise ValueError(f"{path.name}: FAQ {row.get('key')} 缺少 {missing} 或编号重复")
            seen.add(row["key"])
            rows.append(row)
    return rows


def seed_faqs(db: Session, folder: Path = SEED_DIR / "faqs") -> int:
    """Insert seed FAQs whose key is new; returns how many were added.

    FAQs already in the database belong to the knowledge team from then on and
    are left as they are.
    """
    existing = set(db.scalars(select(Faq.key)))
    added = 0
    for row in read_seed_faqs(folder):
        if row["key"] in existing:
            continue
        faq = Faq(
            key=row["key"], question=row["question"].strip(), answer=row["answer"].strip(),
            category=row["category"], status=FaqStatus(row.get("status", "published")),
        )
        faq.similar_questions = [FaqQuestion(text=t.strip()) for t in dict.fromkeys(row.get("similar", []))]
        db.add(faq)
        added += 1
    return added


def seed_all(db: Session) -> dict[str, int]:
    counts = {"merchants": seed_demo(db), "faqs": seed_faqs(db)}
    db.commit()
    return counts
