"""The bench databases of ``benchmarks.service_api``: create, bulk-load, and read back what the clients need.

SQLite lives in ``var/bench/service_api.db``; PostgreSQL in the database ``sjzs_bench`` on 127.0.0.1:5432
(user postgres, trust auth). The schema comes from the Alembic migrations, applied as devtools.prepare does.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, event, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from api.models import CaseEvent, CaseKind, CaseStatus, Merchant, Penalty, ServiceCase
from core.settings import REPO_ROOT

BENCH_DIR = REPO_ROOT / "var" / "bench"
SQLITE_FILE = BENCH_DIR / "service_api.db"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "sjzs_bench"
MERCHANT_BASE, CASE_BASE, PENALTY_BASE = 20_000_000, 100_000_000_000, 100_000_000_000
BATCH = 20_000
FINAL_STATUSES = (CaseStatus.need_info, CaseStatus.resolved, CaseStatus.rejected, CaseStatus.closed)


def database_url(backend: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{SQLITE_FILE}"
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"


def _pg_admin(sql: str, params: tuple = ()) -> tuple | None:
    """Run one statement on PostgreSQL's maintenance database; returns its first row, if it has rows."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchone() if cur.description else None


def drop_database(backend: str) -> None:
    """Remove the bench database: the SQLite file with its WAL, or the PostgreSQL database."""
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_FILE}{suffix}").unlink(missing_ok=True)
    else:
        _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def create_database(backend: str) -> None:
    """A fresh database with the schema of the Alembic head."""
    from alembic import command
    from alembic.config import Config

    drop_database(backend)
    if backend == "sqlite":
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
    else:
        _pg_admin(f'CREATE DATABASE "{PG_DATABASE}"')
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["url"] = database_url(backend)
    command.upgrade(cfg, "head")


def row_counts(backend: str) -> dict[str, int] | None:
    """Rows in the loaded tables, or None when the database is not there."""
    if backend == "sqlite" and not SQLITE_FILE.exists():
        return None
    engine = create_engine(database_url(backend))
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in ("merchants", "service_cases", "penalties")}
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def pg_version() -> str:
    return _pg_admin("SHOW server_version")[0].split()[0]


def pg_sessions() -> int:
    """Sessions PostgreSQL has opened on the bench database so far (one per new connection)."""
    return _pg_admin("SELECT sessions FROM pg_stat_database WHERE datname = %s", (PG_DATABASE,))[0]


# --------------------------------------------------------------------------- bulk load


def merchant_rows(n: int, now: datetime) -> Iterator[dict]:
    for i in range(n):
        yield dict(id=i + 1, code=f"M{MERCHANT_BASE + i}", name=f"压测店铺{i:05d}", main_category="服饰",
                   created_at=now - timedelta(days=400))


def penalty_rows(merchants: int, per_merchant: int, now: datetime) -> Iterator[dict]:
    """Appealable penalties with a deadline a year ahead, dealt round-robin to the merchants."""
    for i in range(merchants * per_merchant):
        yield dict(id=i + 1, number=f"CF{PENALTY_BASE + i}", merchant_id=i % merchants + 1, rule="虚假发货",
                   detail="承诺时间内未揽收", measure="扣分", points=2, occurred_at=now - timedelta(days=1),
                   appealable=True, appeal_deadline=now + timedelta(days=365), created_at=now)


def case_rows(n: int, merchants: int, rng: random.Random, now: datetime) -> Iterator[tuple[dict, list[dict]]]:
    """Cases of random merchants and kinds, with their timelines: submitted, processing, maybe an outcome."""
    kinds = list(CaseKind)
    for i in range(n):
        created = now - timedelta(minutes=rng.randrange(180 * 24 * 60))
        expected = created + timedelta(days=3)
        steps = [CaseStatus.submitted, CaseStatus.processing]
        if rng.random() < 0.5:
            steps.append(rng.choice(FINAL_STATUSES))
        events = [dict(case_id=i + 1, at=created + timedelta(hours=6 * k), status=status,
                       note=f"第 {k + 1} 步", expected_done_at=expected) for k, status in enumerate(steps)]
        case = dict(id=i + 1, number=f"GD{CASE_BASE + i}", merchant_id=rng.randrange(merchants) + 1,
                    kind=rng.choice(kinds), title="压测工单", status=steps[-1], expected_done_at=expected,
                    created_at=created, updated_at=events[-1]["at"])
        yield case, events


def batches(rows, size: int = BATCH) -> Iterator[list]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def insert_rows(conn, model, rows: list[dict]) -> None:
    """Insert one batch: COPY on PostgreSQL, an executemany INSERT on SQLite."""
    if conn.dialect.name != "postgresql":
        conn.execute(insert(model), rows)
        return
    columns = list(rows[0])
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])


def load(backend: str, merchants: int, cases: int, per_merchant: int) -> float:
    """Bulk-load the data set in one transaction, then ANALYZE; returns the seconds it took."""
    rng, now, t0 = random.Random(20261125), datetime.now(UTC), time.monotonic()
    engine = create_engine(database_url(backend))
    if backend == "sqlite":
        @event.listens_for(engine, "connect")
        def _fast(dbapi_conn, _record):
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=OFF")

    with engine.begin() as conn:
        for batch in batches(merchant_rows(merchants, now)):
            insert_rows(conn, Merchant, batch)
        for batch in batches(penalty_rows(merchants, per_merchant, now)):
            insert_rows(conn, Penalty, batch)
        done = 0
        for batch in batches(case_rows(cases, merchants, rng, now)):
            insert_rows(conn, ServiceCase, [case for case, _ in batch])
            insert_rows(conn, CaseEvent, [e for _, events in batch for e in events])
            done += len(batch)
            if done % 100_000 < BATCH or done == cases:
                print(f"    {done:,} cases ({time.monotonic() - t0:.0f} s)", flush=True)
        if backend == "postgresql":  # ids were given explicitly: move the sequences past them
            for table in ("merchants", "service_cases", "case_events", "penalties"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) "
                                  f"FROM {table}"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.monotonic() - t0


# --------------------------------------------------------------------------- what the clients use


@dataclass
class Workload:
    """What the clients pick from: each merchant's case numbers, and penalties nobody has appealed yet."""

    cases: dict[str, list[str]]
    penalties: list[tuple[str, str]]  # (merchant code, penalty number), shuffled; each is used once
    db_size_mb: float


def prepare_workload(backend: str, rng: random.Random) -> Workload:
    """Delete the appeals of earlier runs, then read the case numbers and penalties."""
    engine = create_engine(database_url(backend))
    with engine.begin() as conn:
        for table in ("evidence", "appeal_events", "appeals"):
            conn.execute(text(f"DELETE FROM {table}"))
    with engine.connect() as conn:
        cases: dict[str, list[str]] = {}
        owned = select(Merchant.code, ServiceCase.number).join_from(ServiceCase, Merchant)
        for code, number in conn.execute(owned):
            cases.setdefault(code, []).append(number)
        penalties = [(code, number) for code, number in conn.execute(
            select(Merchant.code, Penalty.number).join_from(Penalty, Merchant))]
        if backend == "postgresql":
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        else:
            size = sum(p.stat().st_size for p in BENCH_DIR.glob(f"{SQLITE_FILE.name}*"))
    engine.dispose()
    rng.shuffle(penalties)
    return Workload(cases, penalties, size / 2**20)
