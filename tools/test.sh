#!/usr/bin/env bash
# README's test command: puts the test models in the cache, makes NVIDIA's NVRTC library
# visible (tools/fetch_nvrtc.sh) so that runtime/tests/nvrtc_compile.rs compiles every GPU
# kernel, then runs every test of the workspace. Extra arguments go to `cargo test`.
#
# Without network access to fetch NVRTC the kernel compile test skips, saying why, unless
# LAZYFORGE_REQUIRE_NVRTC=1 (CI), where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/fetch_test_model.sh
if nvrtc_dir="$(bash tools/fetch_nvrtc.sh)"; then
    export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
elif [ "${LAZYFORGE_REQUIRE_NVRTC:-}" = 1 ]; then
    echo "tools/test.sh: LAZYFORGE_REQUIRE_NVRTC=1 but NVRTC could not be installed" >&2
    exit 1
else
    echo "tools/test.sh: NVRTC could not be installed; the kernel compile test will skip" >&2
fi
cargo test --workspace "$@"
