#!/usr/bin/env bash
# Builds, here, what tools/gpu_check.sh runs on a lent GPU machine (which has no Rust
# toolchain), into ./gpu-bundle (ignored by git; carry it with the working tree, under the
# 64 MiB limit): release binaries with `--features cuda`, stripped.
#
#   bash tools/gpu_bundle.sh && du -sh gpu-bundle
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out=gpu-bundle
rm -rf "$out" && mkdir -p "$out"

cargo build --release --features cuda -p lazyforge-models --bin lazyforge --example synth_gguf
cp "$target/release/lazyforge" "$target/release/examples/synth_gguf" "$out/"

# Test binaries: cargo prints their paths as JSON.
tests() {
    cargo test --release --features cuda "$@" --no-run --message-format=json 2>/dev/null \
        | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])'
}
cp "$(tests -p lazyforge --test cuda_parity)" "$out/cuda_parity_ops"
cp "$(tests -p lazyforge --test nvrtc_compile)" "$out/nvrtc_compile"
cp "$(tests -p lazyforge-models --test cuda_parity)" "$out/cuda_parity_model"
cp tools/gpu_check.sh "$out/"
strip "$out"/lazyforge "$out"/synth_gguf "$out"/cuda_parity_* "$out"/nvrtc_compile
git rev-parse HEAD > "$out/COMMIT" 2>/dev/null || true
du -sh "$out"
