"""Requests per second and latency of the service API at production size, on SQLite and PostgreSQL.

Run: ``.venv/app/bin/python -m benchmarks.service_api --backend both`` (defaults: 10k merchants, 1M cases,
32 concurrent clients in 4 processes, 20 s per request type).

Each backend gets a bench database (``benchmarks.service_data``; reused when its row counts match,
``--reload`` forces a new load) and its own real API: uvicorn, one worker, on a free port. Concurrent httpx
clients then send, each request as a random merchant with a widget token:

- progress lookup: ``GET /api/cases/{number}``, a case of that merchant (expects 200) or, 5% of the time,
  another merchant's (expects 404);
- appeal filing: ``POST /api/appeals`` on a penalty nobody has appealed yet (expects 201).

``--concurrency 8 32`` measures each number of clients. Every backend and number of clients gets a warm-up,
then the measured time is split into rounds that take turns, so all of them see the same background load.
The report includes the CPU the API, the clients and the whole machine used, so a busy machine shows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import platform
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from api.security import create_merchant_token
from core.settings import REPO_ROOT

from . import service_data as data

MODEL_DIR = REPO_ROOT / "var" / "models" / "multilingual-e5-small"
WIDGET_SECRET = "bench-widget-secret-0123456789abcdef-0123456789"
CLIENTS_PER_PROCESS = 8
FOREIGN_SHARE = 0.05  # lookups of another merchant's case, which must answer 404
APPEAL_BODY = {"reason": "third_party", "description": "快递公司揽收延误，有物流公司出具的情况说明。"}


# --------------------------------------------------------------------------- the API under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def api_server(url: str, **extra_env: str) -> Iterator[tuple[str, int]]:
    """The real API (uvicorn, one worker) on a free port; yields its base URL and process id."""
    port, tmp = free_port(), Path(tempfile.mkdtemp(prefix="sjzs-bench-"))
    env = dict(os.environ, SJZS_DATABASE_URL=url, SJZS_VAR_DIR=str(tmp), SJZS_EMBEDDING_MODEL=str(MODEL_DIR),
               SJZS_WIDGET_SECRET=WIDGET_SECRET, SJZS_RASA_PORT=str(free_port()),
               SJZS_ACTION_PORT=str(free_port()), **extra_env)
    cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--no-access-log", "--log-level", "warning"]
    with (tmp / "api.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_idle(base, proc)
            yield base, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            shutil.rmtree(tmp, ignore_errors=True)


def wait_until_idle(base: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Until /healthz answers (any status: Rasa is not running) and the knowledge base has loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API exited with code {proc.returncode}")
        try:
            components = httpx.get(f"{base}/healthz", timeout=10).json()["components"]
            if "loading" not in (components["model"]["status"], components["index"]["status"]):
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit("the API did not become ready")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds spent machine-wide (all CPUs, every process) since boot."""
    cpu = Path("/proc/stat").read_text().split()[1:9]  # user nice system idle iowait irq softirq steal
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, cpu)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load generation


@dataclass
class Result:
    """One request type, backend and number of clients, summed over its rounds."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    unexpected: Counter = field(default_factory=Counter)  # status code (or exception name) → count
    samples: dict = field(default_factory=dict)  # unexpected status → first response body
    api_cpu: float = 0.0  # CPU seconds of the API process
    client_cpu: float = 0.0  # CPU seconds of the client processes
    machine_cpu: float = 0.0  # CPU seconds machine-wide, every process
    db_connects: int | None = None  # PostgreSQL sessions opened
    exhausted: bool = False  # ran out of fresh penalties

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def share(self, cpu_seconds: float) -> float:
        """CPU seconds → cores busy on average."""
        return cpu_seconds / self.seconds

    @property
    def cpu_ms(self) -> float:
        """API CPU per request: one worker can serve at most about 1000 / cpu_ms requests/s."""
        return self.api_cpu / len(self.latencies) * 1000


Request = Callable[[httpx.AsyncClient], Awaitable[tuple[httpx.Response | None, int]]]  # None: nothing to send


@dataclass
class Target:
    """One backend under test: its API and what its clients pick from."""

    backend: str
    load_note: str
    work: data.Workload
    base: str = ""
    pid: int = 0
    headers: dict[str, dict] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def progress_lookup(self) -> Request:
        codes, rng = list(self.work.cases), self.rng

        async def request(client: httpx.AsyncClient):
            code = owner = rng.choice(codes)
            if rng.random() < FOREIGN_SHARE:
                while owner == code:
                    owner = rng.choice(codes)
            number = rng.choice(self.work.cases[owner])
            return await client.get(f"/api/cases/{number}", headers=self.headers[code]), (
                200 if owner == code else 404)

        return request

    def appeal_filing(self) -> Request:
        async def request(client: httpx.AsyncClient):
            if not self.work.penalties:
                return None, 201
            code, number = self.work.penalties.pop()
            body = {**APPEAL_BODY, "penalty_number": number}
            return await client.post("/api/appeals", json=body, headers=self.headers[code]), 201

        return request


REQUEST_TYPES = {"progress lookup": Target.progress_lookup, "appeal filing": Target.appeal_filing}


async def drive(target: Target, request: Request, seconds: float, concurrency: int, result: Result) -> None:
    """``concurrency`` clients of one process send ``request`` back to back for ``seconds``."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=target.base, limits=limits, timeout=60) as client:

        async def client_loop(deadline: float) -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    response, expected = await request(client)
                    if response is None:
                        result.exhausted = True
                        return
                    status, body = response.status_code, response.text
                except httpx.HTTPError as exc:
                    status, expected, body = type(exc).__name__, 0, str(exc)
                result.latencies.append(time.perf_counter() - start)
                if status != expected:
                    result.unexpected[status] += 1
                    result.samples.setdefault(status, body[:300])

        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(client_loop(deadline) for _ in range(concurrency)))


def client_process(target: Target, request_type: str, seconds: float, concurrency: int, seed: int,
                   penalties: list[tuple[str, str]], queue: mp.Queue) -> None:
    """One client process (forked): drives with its own share of the penalties, reports back what it saw."""
    target.rng, target.work.penalties, result = random.Random(seed), penalties, Result()
    cpu = time.process_time()
    asyncio.run(drive(target, REQUEST_TYPES[request_type](target), seconds, concurrency, result))
    result.client_cpu = time.process_time() - cpu
    queue.put((result, target.work.penalties))


def run_clients(target: Target, request_type: str, seconds: float, clients: int, result: Result) -> None:
    """``clients`` concurrent clients for ``seconds``, at most CLIENTS_PER_PROCESS per forked process: one
    httpx pool with many connections costs the client more CPU per request than the API spends on it."""
    n = -(-clients // CLIENTS_PER_PROCESS)
    sizes = [clients // n + (i < clients % n) for i in range(n)]
    chunks = [target.work.penalties[i::n] for i in range(n)]  # each penalty is filed once
    ctx, pg = mp.get_context("fork"), target.backend == "postgresql"
    queue = ctx.Queue()
    sessions = data.pg_sessions() if pg else 0
    api, machine, t0 = process_cpu(target.pid), machine_cpu(), time.perf_counter()
    procs = [ctx.Process(target=client_process, args=(target, request_type, seconds, size,
                                                      random.randrange(2**32), chunk, queue))
             for size, chunk in zip(sizes, chunks)]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    result.seconds += time.perf_counter() - t0
    result.api_cpu += process_cpu(target.pid) - api
    result.machine_cpu += machine_cpu() - machine
    if pg:
        result.db_connects = (result.db_connects or 0) + data.pg_sessions() - sessions
    target.work.penalties = [p for _, left in outcomes for p in left]
    for part, _ in outcomes:
        result.latencies += part.latencies
        result.unexpected.update(part.unexpected)
        result.samples = {**part.samples, **result.samples}
        result.client_cpu += part.client_cpu
        result.exhausted |= part.exhausted


Results = dict[str, dict[tuple[str, int], Result]]  # backend → (request type, clients) → result


def measure(targets: list[Target], args: argparse.Namespace) -> Results:
    """Per request type: warm up every backend and number of clients, then measure them in turn, by rounds."""
    results: Results = {t.backend: {} for t in targets}
    random.seed(7)
    for name in REQUEST_TYPES:
        runs = [(t, clients) for clients in args.concurrency for t in targets]
        for t, clients in runs:
            run_clients(t, name, args.warmup, clients, Result())
            results[t.backend][name, clients] = Result()
        for _ in range(args.rounds):
            for t, clients in runs:
                result, seconds = results[t.backend][name, clients], args.duration / args.rounds
                run_clients(t, name, seconds, clients, result)
        for t, clients in runs:
            print(f"    {t.backend} {name}, {clients} clients: {summary(results[t.backend][name, clients])}",
                  flush=True)
    return results


def summary(r: Result) -> str:
    line = (f"{r.rps:.0f} req/s, p50 {r.pct(0.5):.1f} ms, p99 {r.pct(0.99):.1f} ms, unexpected "
            f"{dict(r.unexpected) or 0}{' (penalties ran out)' if r.exhausted else ''}; API CPU "
            f"{r.share(r.api_cpu):.0%} ({r.cpu_ms:.1f} ms/request), clients {r.share(r.client_cpu):.0%}, "
            f"machine {r.share(r.machine_cpu):.2f} of {os.cpu_count()} cores")
    if r.db_connects is not None:
        line += f"; {r.db_connects} new PostgreSQL connections"
    return line + "".join(f"\n      {status}: {body}" for status, body in r.samples.items())


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    return (f"{os.cpu_count()} vCPU ({model}), {mem_kb / 2**20:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def report(args: argparse.Namespace, targets: list[Target], results: Results) -> str:
    with_pg = any(t.backend == "postgresql" for t in targets)
    pg_version = f", PostgreSQL {data.pg_version()}" if with_pg else ""
    lines = [
        f"## Service API: progress lookup and appeal filing ({args.merchants:,} merchants, "
        f"{args.cases:,} cases)", "",
        f"Machine: {machine()}{pg_version}.  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d}.  ",
        f"Data: {args.merchants:,} merchants, {args.cases:,} service cases with 2–3 timeline steps each, "
        f"{args.merchants * args.penalties_per_merchant:,} appealable penalties.  ",
        f"API: uvicorn with 1 worker per backend; clients, API and database on the same machine; "
        f"{' / '.join(map(str, args.concurrency))} concurrent httpx clients, at most {CLIENTS_PER_PROCESS} "
        "per client process; per request type, backend and number of clients "
        f"{args.warmup:g} s warm-up, then {args.duration:g} s measured in {args.rounds} rounds that take "
        "turns (so all see the same background load).  ",
        f"Command: `.venv/app/bin/python -m benchmarks.service_api {' '.join(sys.argv[1:])}`", "",
        "| backend | load | DB size | request | clients | req/s | p50 ms | p99 ms | requests | unexpected | "
        "API CPU | API CPU ms/req | client CPU | machine CPU | new DB connections |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        for (name, clients), r in results[t.backend].items():
            unexpected = ", ".join(f"{k} ×{v}" for k, v in r.unexpected.items()) or "0"
            connects = "–" if r.db_connects is None else f"{r.db_connects:,}"
            lines.append(
                f"| {t.backend} | {t.load_note} | {t.work.db_size_mb:,.0f} MB | {name} | {clients} | "
                f"{r.rps:,.0f} | {r.pct(0.5):.1f} | {r.pct(0.99):.1f} | {len(r.latencies):,} | "
                f"{unexpected} | {r.share(r.api_cpu):.0%} | {r.cpu_ms:.1f} | {r.share(r.client_cpu):.0%} | "
                f"{r.share(r.machine_cpu):.2f} | {connects} |")
    lines += [
        "",
        "progress lookup: 5% of the numbers are another merchant's case and must answer 404; appeal filing: "
        "each request on a penalty not appealed before, must answer 201. API / client CPU: cores used by the "
        "API process / the client processes; machine CPU: cores busy machine-wide (of "
        f"{os.cpu_count()}, every process, ours or not); new DB connections: PostgreSQL sessions opened "
        "during the measured time.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line


def prepare(backend: str, args: argparse.Namespace) -> Target:
    """The backend's database, loaded (or reused) and reset, with what its clients will pick from."""
    want = {"merchants": args.merchants, "service_cases": args.cases,
            "penalties": args.merchants * args.penalties_per_merchant}
    print(f"==> {backend}: {data.database_url(backend)}", flush=True)
    if not args.reload and data.row_counts(backend) == want:
        load_note = "reused"
        print("    reusing the loaded database", flush=True)
    else:
        data.create_database(backend)
        seconds = data.load(backend, args.merchants, args.cases, args.penalties_per_merchant)
        load_note = f"{seconds:.0f} s"
        print(f"    loaded in {seconds:.1f} s", flush=True)
    return Target(backend, load_note, data.prepare_workload(backend, random.Random(11)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--merchants", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--penalties-per-merchant", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per request type")
    parser.add_argument("--rounds", type=int, default=4, help="rounds the measured time is split into")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per request type")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32],
                        help="concurrent clients; with several values, each is measured")
    parser.add_argument("--reload", action="store_true", help="load even if a matching database exists")
    parser.add_argument("--drop", action="store_true", help="delete the bench databases afterwards")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    targets = [prepare(backend, args) for backend in backends]
    gc.freeze()  # the forked client processes then share the workloads instead of copying them
    with ExitStack() as servers:
        for t in targets:
            t.base, t.pid = servers.enter_context(api_server(data.database_url(t.backend)))
            codes = set(t.work.cases) | {code for code, _ in t.work.penalties}
            t.headers = {c: {"Authorization": f"Bearer {create_merchant_token(c, WIDGET_SECRET, 120)}"}
                         for c in codes}
        results = measure(targets, args)
    markdown = report(args, targets, results)
    print("\n" + markdown)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown, encoding="utf-8")
    if args.drop:
        for backend in backends:
            data.drop_database(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
