#!/usr/bin/env bash
# Installs PyTorch (whose libtorch the `libtorch` feature links) into a virtual environment outside the
# checkout and prints the shell exports the build needs:
#   eval "$(scripts/libtorch.sh)" && cargo build --release -p cg-cli --features libtorch
# CG_TORCH_VERSION picks the version (default 2.11.0), CG_TORCH_VENV the folder
# (default ~/.cache/cg/torch-<version>). A venv that already holds that version is reused.
set -euo pipefail
version="${CG_TORCH_VERSION:-2.11.0}"
venv="${CG_TORCH_VENV:-$HOME/.cache/cg/torch-$version}"
python="${CG_PYTHON:-python3}"

installed() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true
}

have="$(installed)"
if [ "${have%%+*}" != "$version" ]; then
  echo "scripts/libtorch.sh: installing torch==$version into $venv (about 3 GB with its CUDA libraries; once)" >&2
  mkdir -p "$(dirname "$venv")"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "torch==$version" >&2
  have="$(installed)"
  if [ "${have%%+*}" != "$version" ]; then
    echo "scripts/libtorch.sh: torch==$version did not install into $venv (found '${have:-none}')" >&2
    exit 1
  fi
fi
lib="$("$venv/bin/python" -c 'import os, importlib.util as u; print(os.path.join(os.path.dirname(u.find_spec("torch").origin), "lib"))')"
if [ ! -e "$lib/libtorch_cpu.so" ]; then
  echo "scripts/libtorch.sh: no libtorch_cpu.so in $lib" >&2
  exit 1
fi
echo "scripts/libtorch.sh: torch $have in $venv" >&2
# torch-sys finds libtorch through the venv's python (LIBTORCH_USE_PYTORCH); tch 0.22 expects
# libtorch 2.9.0, and 2.11.0 builds and runs with the version check bypassed.
cat <<OUT
export LIBTORCH_USE_PYTORCH=1
export LIBTORCH_BYPASS_VERSION_CHECK=1
export CG_LIBTORCH_LIB='$lib'
export CG_TORCH_PYTHON='$venv/bin/python'
export PATH='$venv/bin':"\$PATH"
OUT
