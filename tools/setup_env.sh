#!/usr/bin/env bash
# Creates (or completes) the virtual environment with the whole mmkd stack.
# Safe to run any number of times: every step checks what is already there.
#
#   MMKD_VENV         where the venv lives               (default: <repo>/.venv)
#   MMKD_WHEEL_CACHE  where the built mmcv wheel is kept (default: ~/.cache/mmkd/wheels)
#   MMKD_TORCH        torch requirement when none is installed (default: torch==2.13.0)
#   MMKD_SYSTEM_SITE  1: the venv sees the system site-packages, so a torch (e.g. a CUDA build)
#                     installed there is kept instead of installing the pinned one
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${MMKD_VENV:-$repo/.venv}
cache=${MMKD_WHEEL_CACHE:-$HOME/.cache/mmkd/wheels}
torch_req=${MMKD_TORCH:-torch==2.13.0}

log() { printf '[setup_env] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  if [ "${MMKD_SYSTEM_SITE:-0}" = 1 ]; then
    python3 -m venv --system-site-packages "$venv"
  else
    python3 -m venv "$venv"
  fi
fi
py="$venv/bin/python"
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }

if [ -f "$venv/.mmkd-ready" ] && "$py" -c "import mmkd, mmcv.ops, mmdet, mmrazor" 2>/dev/null \
   && [ "$(cat "$venv/.mmkd-ready")" = "$(cat "$repo"/requirements/*.txt "$repo/setup.py" | cksum)" ]; then
  log "environment already complete: $venv"
  exit 0
fi

# Keep a torch that is already installed (e.g. a user's CUDA build); otherwise take the pinned one.
if "$py" -c "import torch" 2>/dev/null; then
  log "keeping installed torch $("$py" -c 'import torch; print(torch.__version__)')"
else
  log "installing $torch_req"
  pip install "$torch_req"
fi
torch_ver=$("$py" -c 'import torch; print(torch.__version__.replace("+", "_"))')

pip install "mmengine==0.10.7" "numpy<2" addict yapf packaging pyyaml regex
# After torch: torch pulls a setuptools too new for mmcv's setup.py (it needs pkg_resources).
pip install -r "$repo/requirements/build.txt"

# mmcv 2.1.0 ships only as a source archive on PyPI: build it once with its compiled ops and keep
# the wheel, keyed by the torch it was built against (the ops link to torch's C++ ABI).
if "$py" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  log "mmcv 2.1.0 with ops already installed"
else
  wheel_dir="$cache/torch-$torch_ver-py$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
  mkdir -p "$wheel_dir"
  wheel=$(ls "$wheel_dir"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv 2.1.0 with ops (about 11 minutes on 2 cores; cached in $wheel_dir)"
    tmp=$(mktemp -d)
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$py" -m pip --disable-pip-version-check wheel "mmcv==2.1.0" --no-deps --no-build-isolation \
      --no-binary mmcv -w "$tmp"
    mv "$tmp"/mmcv-2.1.0-*.whl "$wheel_dir"/
    rm -rf "$tmp"
    wheel=$(ls "$wheel_dir"/mmcv-2.1.0-*.whl | head -n 1)
  else
    log "using cached $wheel"
  fi
  pip install --no-deps "$wheel"
fi

pip install -r "$repo/requirements/runtime.txt" -r "$repo/requirements/tests.txt"
pip install --no-deps --no-build-isolation -e "$repo"
"$py" -c "import mmkd, mmcv.ops, mmdet, mmrazor; print('mmkd', mmkd.__version__, 'ready')"
cat "$repo"/requirements/*.txt "$repo/setup.py" | cksum > "$venv/.mmkd-ready"
log "done: $venv"
