"""Start-up time and idle memory of the three processes, and the size of the two venvs.

Run: ``.venv/app/bin/python -m benchmarks.stack_footprint`` (the stack must not be running on the
default ports). Starts the stack the way ``make run`` does, measures the time until every part is
healthy, waits for it to go idle, then sums the resident memory of each process tree.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from core.settings import REPO_ROOT, get_settings
from devtools.stack import Stack


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, StopIteration):
            continue
    return total / 1024


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True).stdout
    return float(out.split()[0]) if out else 0.0


def main() -> None:
    settings = get_settings()
    stack = Stack(settings, echo=lambda _line: None)
    t0 = time.monotonic()
    stack.start()
    ready = time.monotonic() - t0
    try:
        time.sleep(20)  # let start-up work settle
        rss = {name: tree_rss_mb(pid) for name, pid in stack.pids().items()}
    finally:
        stack.stop()
    print(f"machine: {os.cpu_count()} CPUs; date {time.strftime('%Y-%m-%d')}")
    print(f"start to all healthy (three processes, warm): {ready:.1f} s")
    for name, mb in rss.items():
        print(f"idle RSS {name:<8} {mb:7.0f} MB")
    print(f"idle RSS total    {sum(rss.values()):7.0f} MB")
    for venv in ("app", "rasa"):
        print(f"venv .venv/{venv}: {du_mb(REPO_ROOT / '.venv' / venv):.0f} MB")
    print(f"embedding model: {du_mb(settings.default_model_dir):.0f} MB; "
          f"Rasa model: {du_mb(settings.rasa_model_dir / 'current.tar.gz'):.0f} MB")


if __name__ == "__main__":
    main()
