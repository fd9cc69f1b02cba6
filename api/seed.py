"""Load the demo data and the seed knowledge base into the database (idempotent)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import REPO_ROOT

from . import security
from .models import (
    Appeal,
    AppealEvent,
    AppealReason,
    AppealStatus,
    CaseEvent,
    CaseKind,
    CaseStatus,
    Faq,
    FaqQuestion,
    FaqStatus,
    FaqVersion,
    HotQuestion,
    Merchant,
    Penalty,
    Role,
    ServiceCase,
    Synonym,
    User,
    utcnow,
)
from .services.appeals import REVIEW_SLA
from .services.faqs import snapshot

SEED_DIR = REPO_ROOT / "data" / "seed"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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
        question = row["question"].strip()
        faq = Faq(
            key=row["key"], question=question, answer=row["answer"].strip(), category=row["category"],
            tags=list(row.get("tags") or []), action=row.get("action"),
            status=FaqStatus(row.get("status", "published")), version=1, updated_by="seed",
        )
        similar = [t.strip() for t in dict.fromkeys(row.get("similar") or []) if t.strip() and t.strip() != question]
        faq.similar_questions = [FaqQuestion(text=t) for t in similar]
        db.add(faq)
        db.flush()
        db.add(FaqVersion(faq_id=faq.id, version=1, snapshot=snapshot(faq), editor="seed"))
        added += 1
    return added


def seed_staff(db: Session, rows: list[dict], password: str) -> int:
    added = 0
    for row in rows:
        if db.scalar(select(User).where(User.username == row["username"])) is None:
            db.add(User(username=row["username"], display_name=row["display_name"], role=Role(row["role"]),
                        password_hash=security.hash_password(password)))
            added += 1
    return added


def _seed_merchant(db: Session, row: dict) -> Merchant:
    merchant = db.scalar(select(Merchant).where(Merchant.code == row["code"]))
    if merchant is None:
        merchant = Merchant(code=row["code"], name=row["name"], main_category=row.get("main_category", ""))
        db.add(merchant)
        db.flush()
    now = utcnow()
    ago = lambda days: now - timedelta(days=days)  # noqa: E731

    for c in row.get("cases", []):
        if db.scalar(select(ServiceCase.id).where(ServiceCase.number == c["number"])):
            continue
        steps = c["steps"]
        expected = next((ago(s["expected_in_days"]) for s in reversed(steps) if "expected_in_days" in s), None)
        case = ServiceCase(number=c["number"], merchant_id=merchant.id, kind=CaseKind(c["kind"]), title=c["title"],
                           status=CaseStatus(steps[-1]["status"]), expected_done_at=expected,
                           created_at=ago(steps[0]["days"]), updated_at=ago(steps[-1]["days"]))
        case.events = [CaseEvent(at=ago(s["days"]), status=CaseStatus(s["status"]), note=s["note"],
                                 expected_done_at=ago(s["expected_in_days"]) if "expected_in_days" in s else None)
                       for s in steps]
        db.add(case)

    penalties: dict[str, Penalty] = {}
    for p in row.get("penalties", []):
        penalty = db.scalar(select(Penalty).where(Penalty.number == p["number"]))
        if penalty is None:
            penalty = Penalty(number=p["number"], merchant_id=merchant.id, rule=p["rule"], measure=p["measure"],
                              points=p.get("points", 0), detail=p.get("detail", ""), occurred_at=ago(p["days"]),
                              appealable=p.get("appealable", True),
                              appeal_deadline=ago(p["deadline_in_days"]) if "deadline_in_days" in p else None)
            db.add(penalty)
            db.flush()
        penalties[p["number"]] = penalty

    for a in row.get("appeals", []):
        if db.scalar(select(Appeal.id).where(Appeal.number == a["number"])):
            continue
        steps = a["steps"]
        appeal = Appeal(number=a["number"], merchant_id=merchant.id, penalty_id=penalties[a["penalty"]].id,
                        reason=AppealReason(a["reason"]), description=a["description"],
                        status=AppealStatus(steps[-1]["status"]), sla_due_at=ago(steps[0]["days"]) + REVIEW_SLA,
                        reviewer_note=steps[-1]["note"] if len(steps) > 1 else "",
                        created_at=ago(steps[0]["days"]), updated_at=ago(steps[-1]["days"]))
        appeal.events = [AppealEvent(at=ago(s["days"]), status=AppealStatus(s["status"]), note=s["note"],
                                     actor=merchant.code if i == 0 else "agent01") for i, s in enumerate(steps)]
        db.add(appeal)
    return merchant


def seed_demo(db: Session, password: str, path: Path = SEED_DIR / "demo.yml") -> dict[str, int]:
    data = load_yaml(path)
    before = db.scalar(select(Merchant.id).limit(1)) is None
    staff = seed_staff(db, data.get("staff", []), password)
    for row in data["merchants"]:
        _seed_merchant(db, row)
    db.flush()
    for term, canonical in (data.get("synonyms") or {}).items():
        if db.scalar(select(Synonym.id).where(Synonym.term == term)) is None:
            db.add(Synonym(term=term, canonical=canonical))
    if db.scalar(select(HotQuestion.id).limit(1)) is None:
        keys = data.get("hot_questions") or []
        ids = {k: i for k, i in db.execute(select(Faq.key, Faq.id).where(Faq.key.in_(keys)))}
        db.add_all(HotQuestion(faq_id=ids[k], position=n) for n, k in enumerate(keys) if k in ids)
    return {"staff": staff, "merchants": len(data["merchants"]) if before else 0}


def seed_all(db: Session, password: str = "sjzs-demo") -> dict[str, int]:
    counts = {"faqs": seed_faqs(db)}
    counts.update(seed_demo(db, password))
    db.commit()
    return counts
