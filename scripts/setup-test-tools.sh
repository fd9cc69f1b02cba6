#!/usr/bin/env bash
# What the tests need beyond the venvs: Debian's Chromium (a browser is never downloaded) and CJK fonts so
# screenshots are readable, Debian's nginx for the scale-out layout (tests/e2e/test_scale_out.py), and the
# published rasa-webchat 1.0.1 bundle for the compatibility test (checked against its hash).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
{ command -v fc-list >/dev/null 2>&1 && fc-list | grep -qi "Noto Sans CJK"; } || missing+=(fonts-noto-cjk)
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> 安装测试需要的系统软件包：${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The published rasa-webchat 1.0.1, from the npm registry, checked against npm's shasum (devtools/vendor.py).
.venv/app/bin/python -m devtools.vendor webchat
