"""Browser packages fetched from the npm registry and checked against npm's hash: the chart library the
dashboard loads (served by the API from ``var/vendor/``: the pages' CSP allows scripts from this origin only,
never a CDN), and the published rasa-webchat bundle the compatibility test embeds (``var/webchat/``).

Run: ``python -m devtools.vendor [webchat]`` (``make run`` / ``make setup`` fetch the chart library through
devtools.prepare; ``scripts/setup-test-tools.sh`` fetches rasa-webchat for the tests)."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

from core.settings import REPO_ROOT

VENDOR_DIR = REPO_ROOT / "var" / "vendor"
# Chart.js 4.4.1 (MIT): npm's shasum of chart.js-4.4.1.tgz and the file the dashboard loads from it.
CHART_JS = {"name": "chart.js", "version": "4.4.1", "sha1": "ac5dc0e69a7758909158a96fe80ce43b3bb96a9f",
            "member": "package/dist/chart.umd.js", "target": "chart.umd.js"}
# rasa-webchat 1.0.1: the bundle a site already using the published widget loads (tests/e2e/test_webchat_compat.py).
RASA_WEBCHAT = {"name": "rasa-webchat", "version": "1.0.1", "sha1": "918985573aa505d81ab927c5ea5919ae29a5ecfd",
                "member": "package/lib/index.js", "target": "rasa-webchat-1.0.1.js"}
WEBCHAT_DIR = REPO_ROOT / "var" / "webchat"
REGISTRY = "https://registry.npmjs.org"


def ensure_package(spec: dict = CHART_JS, folder: Path = VENDOR_DIR, registry: str = REGISTRY) -> Path:
    """Download the package's tarball once, check its SHA-1 and unpack the one file the pages need."""
    target = folder / spec["target"]
    stamp = folder / (spec["target"] + ".version")
    wanted = f"{spec['name']}@{spec['version']} {spec['sha1']}"
    if target.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return target
    url = f"{registry}/{spec['name']}/-/{spec['name'].split('/')[-1]}-{spec['version']}.tgz"
    print(f"==> 下载 {spec['name']} {spec['version']}（npm 仓库，校验哈希）", flush=True)
    with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (a fixed https URL)
        data = resp.read()
    got = hashlib.sha1(data).hexdigest()  # noqa: S324 (npm publishes SHA-1 shasums; we compare, not protect)
    if got != spec["sha1"]:
        raise SystemExit(f"{spec['name']} {spec['version']} 的哈希不符：{got} ≠ {spec['sha1']}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile(spec["member"])
        if member is None:
            raise SystemExit(f"{spec['name']} 的压缩包里没有 {spec['member']}")
        body = member.read()
    folder.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(body)
    part.replace(target)
    stamp.write_text(wanted)
    return target


if __name__ == "__main__":
    print(ensure_package(RASA_WEBCHAT, WEBCHAT_DIR) if sys.argv[1:] == ["webchat"] else ensure_package())
    sys.exit(0)
