"""Which embedding model the API serves: a small pointer file that the tuning job rewrites when it promotes one.

The file (``var/models/serving.json``) names the model folder(s) and when they were promoted. Without it the
API serves the unmodified model set-up built. It is replaced atomically, so a reader sees the old pointer or the
new one, never half of either.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

THRESHOLDS_FILE = "kb_thresholds.json"  # a tuned model keeps its calibrated thresholds in its own folder


@dataclass(frozen=True)
class Serving:
    model: str             # one model folder, or several separated by commas (their cosines are averaged)
    promoted_at: str = ""  # ISO 8601, UTC
    run: str = ""          # the tuning run that promoted it


def read(path: Path) -> Serving | None:
    """The pointer, or None when there is none (or it is unreadable, or a folder it names is gone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        serving = Serving(model=str(data["model"]), promoted_at=str(data.get("promoted_at", "")),
                          run=str(data.get("run", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folders = [p.strip() for p in serving.model.split(",") if p.strip()]
    if not folders or not all((Path(f) / "modules.json").exists() for f in folders):
        return None
    return serving


def write(path: Path, serving: Serving) -> None:
    """Replace the pointer in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(serving), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def previous_file(path: Path) -> Path:
    """Where the pointer served before the last promotion is kept (``serving.previous.json``), to go back to."""
    return path.with_name(path.stem + ".previous" + path.suffix)


def promote(path: Path, new: Serving, unmodified: str) -> Serving:
    """Point at ``new`` and keep what was served until now (``unmodified``, the set-up's model folder, when no
    pointer existed) as the previous pointer; returns the previous one."""
    previous = read(path) or Serving(model=unmodified)
    write(previous_file(path), previous)
    write(path, new)
    return previous


def rollback(path: Path, unmodified: str, now: str = "") -> Serving:
    """Serve the previous model again (一键回滚): the previous pointer becomes the pointer and the current one the
    previous (so a second rollback goes forward again). Raises LookupError when there is nothing to go back to
    (no promotion yet, or the previous model's folder is gone)."""
    previous = read(previous_file(path))
    if previous is None:
        raise LookupError("没有可以回滚到的上一个模型")
    current = read(path) or Serving(model=unmodified)
    if current.model == previous.model:
        raise LookupError("上一个模型就是正在使用的模型")
    write(previous_file(path), current)
    back = Serving(model=previous.model, promoted_at=now or previous.promoted_at, run=previous.run)
    write(path, back)
    return back


def save_thresholds(path: Path, model_name: str, values: dict) -> None:
    """Set one model's entry in a thresholds table (a model's own file, or data/kb_thresholds.json)."""
    table = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    table[model_name] = values
    path.write_text(json.dumps(table, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def stamp(path: Path) -> tuple[int, int] | None:
    """What changes when the pointer is rewritten (cheap to poll)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino
