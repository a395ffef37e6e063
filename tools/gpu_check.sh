#!/usr/bin/env bash
# The prepared device check, for a lent GPU machine (NVIDIA H200, driver 580 / CUDA 13.0, no
# network, no Rust toolchain). Runs from the bundle tools/gpu_bundle.sh built and writes
# everything under $OUT (default ./gpu-check-out), with a summary in $OUT/summary.txt:
#
#   1. the driver and NVRTC/cuBLAS libraries found (nvidia-smi, library paths);
#   2. the kernel compile test and the GPU tests (op parity, model parity with greedy ids);
#   3. random-weight GGUF models written there with lazyforge's own writer: SmolLM2-135M's
#      shapes in Q4_1, a 1B-class model in Q4_K, a 7B-class model in Q4_0;
#   4. decode and prefill tok/s on cuda (and cpu for the small model), cold and warm first
#      token, the same with a budget of half the model;
#   5. HF transformers (installed there) on the small model's weights, when its GGUF loader
#      is available, as the peer.
#
# Usage on the device machine: bash gpu-bundle/gpu_check.sh [BUNDLE_DIR]   (about 8 minutes)
set -uo pipefail
bundle="${1:-$(dirname "$0")}"
bundle="$(cd "$bundle" && pwd)"
out="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
work="$(mktemp -d)"

# NVRTC and cuBLAS: from the CUDA install or the Python wheels PyTorch brought.
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 - <<'PY' 2>/dev/null
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
seen = set()
for r in roots:
    for f in glob.glob(os.path.join(r, "nvidia", "**", "lib*.so*"), recursive=True):
        if any(k in os.path.basename(f) for k in ("nvrtc", "cublas")):
            seen.add(os.path.dirname(f))
print("\n".join(sorted(seen)))
PY
    ); do
    [ -d "$dir" ] && export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
say "commit: $(cat "$bundle/COMMIT" 2>/dev/null || echo unknown)"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 && say "nvidia-smi: $(grep -m1 -o 'Driver Version: [0-9.]*' "$out/nvidia-smi.txt")"
for lib in libcuda.so.1 libnvrtc.so.13 libcublas.so.13 libcublas.so.12; do
    found="$(ldconfig -p 2>/dev/null | grep -m1 "$lib" || true)"
    [ -z "$found" ] && found="$(IFS=:; for d in $LD_LIBRARY_PATH; do ls "$d/$lib" 2>/dev/null; done | head -1)"
    say "$lib: ${found:-not found}"
done

run() { # name timeout command...
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    say "$name: rc=$rc ($((SECONDS - start)) s) $(grep -E 'test result|skipped|panicked' "$out/$name.txt" | head -3 | tr '\n' ' ')"
    return $rc
}

run nvrtc_compile 120 "$bundle/nvrtc_compile" --nocapture
run cuda_parity_ops 180 "$bundle/cuda_parity_ops" --nocapture --test-threads 1
run cuda_parity_model 240 "$bundle/cuda_parity_model" --nocapture

ids="$(seq -s, 1 128)"
bench() { # label model device extra...
    local label=$1 model=$2 device=$3; shift 3
    run "$label" 300 "$bundle/lazyforge" run --model "$model" --device "$device" \
        --prompt-ids "$ids" --max-tokens 64 --temperature 0 --json "$@"
    python3 - "$out/$label.txt" <<'PY' | tee -a "$summary"
import json, re, sys
text = open(sys.argv[1]).read()
start = text.find("{")
try:
    doc = json.loads(text[start:])
except Exception:
    print("   (no JSON result)"); sys.exit()
stats = doc.get("stats", doc)
keys = [k for k in stats if re.search("tok|first|open|budget|evict|reload|load_ms|peak|materialize", k)]
print("   " + ", ".join(f"{k}={stats[k]}" for k in keys))
PY
}

"$bundle/synth_gguf" smollm2 Q4_1 "$work/smollm2-q4_1.gguf" >> "$summary" 2>&1
bench smollm2_cuda "$work/smollm2-q4_1.gguf" cuda
bench smollm2_cuda_warm "$work/smollm2-q4_1.gguf" cuda
bench smollm2_cuda_half_budget "$work/smollm2-q4_1.gguf" cuda --budget 50%
bench smollm2_cpu "$work/smollm2-q4_1.gguf" cpu --threads 16
"$bundle/synth_gguf" 1b Q4_K "$work/llama1b-q4_k.gguf" >> "$summary" 2>&1
bench llama1b_cuda "$work/llama1b-q4_k.gguf" cuda
"$bundle/synth_gguf" 7b Q4_0 "$work/llama7b-q4_0.gguf" >> "$summary" 2>&1
bench llama7b_cuda "$work/llama7b-q4_0.gguf" cuda
bench llama7b_cuda_half_budget "$work/llama7b-q4_0.gguf" cuda --budget 50%

# The peer: transformers on the same weights (its GGUF loader needs the `gguf` package).
run transformers_peer 300 python3 - "$work/smollm2-q4_1.gguf" <<'PY'
import sys, time
import torch
from transformers import AutoModelForCausalLM
path = sys.argv[1]
import os
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32).cuda()
ids = torch.arange(1, 129).unsqueeze(0).cuda()
with torch.no_grad():
    torch.cuda.synchronize(); t = time.time()
    out = model.generate(ids, max_new_tokens=64, do_sample=False, min_new_tokens=64)
    torch.cuda.synchronize(); dt = time.time() - t
print(f"transformers cuda f32: 64 tokens after a 128-token prompt in {dt:.3f} s ({64 / dt:.1f} tok/s overall)")
PY
grep -h "transformers cuda" "$out/transformers_peer.txt" >> "$summary" 2>/dev/null
rm -rf "$work"
say "done; files under $out"
