#!/usr/bin/env bash
# Create or update the two virtual environments from the pinned files in requirements/.
# Each venv records the hash of what it was built from; an unchanged venv is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

APP_VENV=.venv/app
RASA_VENV=.venv/rasa

find_python() {  # find_python 3.11 -> path of an interpreter of that version
  local want=$1 c
  for c in "python$want" "/root/.pyenv/versions/$want"*/bin/python "$HOME/.pyenv/versions/$want"*/bin/python \
           /usr/bin/python3 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  echo "找不到 Python $want：请安装它（例如 pyenv install $want）" >&2
  return 1
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

ensure_venv() {  # ensure_venv DIR PYVER STAMP INSTALL_FN
  local dir=$1 ver=$2 stamp=$3 fn=$4
  if [ -f "$dir/.built-from" ] && [ "$(cat "$dir/.built-from")" = "$stamp" ] && [ -x "$dir/bin/python" ]; then
    return 0
  fi
  echo "==> 准备虚拟环境 $dir (Python $ver)"
  if [ ! -x "$dir/bin/python" ]; then
    "$(find_python "$ver")" -m venv "$dir"
  fi
  local t0=$SECONDS
  "$fn" "$dir"
  echo "$stamp" > "$dir/.built-from"
  echo "==> $dir 就绪 ($((SECONDS - t0)) s)"
}

install_app() {
  local pip="$1/bin/pip"
  # torch first: the CPU wheel on local disk. Any other torch would pull a multi-GB CUDA build.
  "$pip" install -q --disable-pip-version-check torch==2.13.0
  "$pip" install -q --disable-pip-version-check -r requirements/app.lock
  "$pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
}

install_rasa() {
  "$1/bin/pip" install -q --disable-pip-version-check -r requirements/rasa.lock
}

ensure_venv "$APP_VENV" 3.11 "$(stamp_of requirements/app.lock pyproject.toml)" install_app
ensure_venv "$RASA_VENV" 3.10 "$(stamp_of requirements/rasa.lock)" install_rasa
