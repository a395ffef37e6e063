#!/usr/bin/env bash
# Installs NVIDIA's NVRTC library (the `nvidia-cuda-nvrtc` Python wheel, CUDA 13.0 line, no
# GPU or driver needed) into a cache directory, and prints the directory that holds
# libnvrtc.so.13, for LD_LIBRARY_PATH. The NVRTC compile test (runtime/tests/nvrtc_compile.rs)
# compiles every CUDA kernel source of lazyforge with it.
#
#   export LD_LIBRARY_PATH="$(bash tools/fetch_nvrtc.sh)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
#
# The version is pinned to 13.0 to match cudarc's `cuda-13000` feature and the driver of the
# lent device machine (PTX from a newer NVRTC may not load on an older driver).
set -euo pipefail
cache="${LAZYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lazyforge}"
target="$cache/nvrtc-13.0"
find_lib() { find "$target" -name 'libnvrtc.so.13*' -print -quit 2>/dev/null; }
lib="$(find_lib || true)"
if [ -z "$lib" ]; then
    mkdir -p "$target"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$target" 'nvidia-cuda-nvrtc==13.0.*' >&2
    lib="$(find_lib || true)"
fi
if [ -z "$lib" ]; then
    echo "fetch_nvrtc.sh: libnvrtc.so.13 not found under $target after pip install" >&2
    exit 1
fi
dirname "$lib"
