"""Generate, train (cached) and query a throw-away Rasa NLU project whose ResponseSelector holds the KB.

The project lives outside git, in ``var/bench/rasa_rs/<hash>/``, where the hash covers everything the
model is trained from (config, domain, NLU data, jieba dictionary, Rasa version): a second run with the same
KB reuses the trained model. Training data: one retrieval intent ``faq/<key>`` per FAQ with its standard and
similar questions, small ``greet`` / ``goodbye`` / ``thanks`` intents, and ``out_of_scope`` from the threshold
calibration list (data/calibration/out_of_scope.yml; never the benchmark's test questions).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from core.settings import REPO_ROOT

HERE = Path(__file__).resolve().parent
RASA_VENV = REPO_ROOT / ".venv" / "rasa" / "bin"
USERDICT = REPO_ROOT / "bot" / "jieba_userdict"
WORK_DIR = REPO_ROOT / "var" / "bench" / "rasa_rs"

OTHER_INTENTS = {
    "greet": ["你好", "您好", "在吗", "有人吗", "客服你好", "早上好", "哈喽", "亲在吗", "你好呀", "hi"],
    "goodbye": ["再见", "拜拜", "先这样吧", "没事了再见", "下次再聊", "好的拜拜", "我先下了", "bye"],
    "thanks": ["谢谢", "多谢", "感谢", "谢谢你", "好的谢谢", "麻烦你了谢谢", "辛苦了", "明白了谢谢"],
}


def _examples(texts: list[str]) -> str:
    # Square brackets would read as entity annotations.
    clean = dict.fromkeys(t.replace("[", "【").replace("]", "】").strip() for t in texts)
    return "".join(f"- {t}\n" for t in clean if t)


def project_files(faqs: list[dict], phrasings, out_of_scope: list[str]) -> dict[str, str]:
    """File name → content of the Rasa project for these FAQs."""
    nlu = [{"intent": f"faq/{f['key']}", "examples": _examples(phrasings(f))} for f in faqs]
    nlu += [{"intent": name, "examples": _examples(ex)} for name, ex in OTHER_INTENTS.items()]
    if out_of_scope:
        nlu.append({"intent": "out_of_scope", "examples": _examples(out_of_scope)})
    domain = {
        "version": "3.1",
        "intents": ["faq", *OTHER_INTENTS, *(["out_of_scope"] if out_of_scope else [])],
        "responses": {f"utter_faq/{f['key']}": [{"text": f["answer"].strip()}] for f in faqs},
    }
    files = {
        "config.yml": (HERE / "config.yml").read_text(encoding="utf-8"),
        "domain.yml": yaml.safe_dump(domain, allow_unicode=True, sort_keys=False),
        "data/nlu.yml": yaml.safe_dump({"version": "3.1", "nlu": nlu}, allow_unicode=True, sort_keys=False),
    }
    for path in sorted(USERDICT.glob("*")):
        files[f"jieba_userdict/{path.name}"] = path.read_text(encoding="utf-8")
    return files


def rasa_version() -> str:
    out = subprocess.run([str(RASA_VENV / "python"), "-c", "import rasa; print(rasa.__version__)"],
                         capture_output=True, text=True, check=True, env=_env())
    return out.stdout.strip()


def _env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"}


def trained_model(files: dict[str, str], log=print) -> tuple[Path, dict]:
    """The model trained on ``files``: from the cache when one exists, else trained now. Also its info."""
    h = hashlib.sha256(rasa_version().encode())
    for name in sorted(files):
        h.update(f"\0{name}\0{files[name]}".encode())
    folder = WORK_DIR / h.hexdigest()[:16]
    model, info_file = folder / "models" / "model.tar.gz", folder / "train.json"
    if model.exists() and info_file.exists():
        info = json.loads(info_file.read_text())
        log(f"Rasa model cached: {model.relative_to(REPO_ROOT)} (trained in {info['train_seconds']:.0f} s)")
        return model, {**info, "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content, encoding="utf-8")
    log(f"training the Rasa ResponseSelector in {folder.relative_to(REPO_ROOT)} (a few minutes) …")
    started = time.monotonic()
    proc = subprocess.run(
        [str(RASA_VENV / "rasa"), "train", "nlu", "-c", "config.yml", "-d", "domain.yml", "-u", "data/nlu.yml",
         "--out", "models", "--fixed-model-name", "model"],
        cwd=folder, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0 or not model.exists():
        (folder / "train.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        raise RuntimeError(f"rasa train nlu failed; see {folder / 'train.log'}")
    info = {"train_seconds": time.monotonic() - started, "rasa": rasa_version()}
    info_file.write_text(json.dumps(info))
    return model, {**info, "cached": False}


def parse(model: Path, texts: list[str]) -> tuple[list[dict], float]:
    """Parse ``texts`` in the Rasa venv; per text the top intent and the faq ranking; also ms per query."""
    with tempfile.TemporaryDirectory(dir=WORK_DIR) as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        proc = subprocess.run([str(RASA_VENV / "python"), str(HERE / "parse_questions.py"), str(model), str(src),
                               str(dst)], env=_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("parsing with Rasa failed:\n" + proc.stderr[-3000:])
        data = json.loads(dst.read_text(encoding="utf-8"))
    return data["results"], data["ms_per_query"]
