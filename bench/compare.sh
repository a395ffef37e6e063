#!/usr/bin/env bash
# Side by side on one GGUF file, same threads, runs alternating: lazyforge against llama.cpp.
#
#   prefill tok/s  a PREFILL_TOKENS-token prompt. lazyforge: `--load eager` (weights loaded
#                  before the clock starts), prefill_tokens_per_s of `--json`; llama.cpp:
#                  llama-bench -p PREFILL_TOKENS -n 0 (its avg_ts).
#   decode tok/s   prefill the short prompt PROMPT_IDS, then DECODE_TOKENS greedy tokens one
#                  at a time. lazyforge: decode_tokens_per_s of `--json`; llama.cpp:
#                  bench/peers/llamacpp_decode.c, the same protocol on libllama.
#   peak RSS       of the decode runs (/usr/bin/time -f %M), whole process.
#
# Prints a markdown table: medians with (min–max) over N runs of each, and the ratio
# lazyforge / llama.cpp of the medians.
#
# Usage (build first: cargo build --release --example llama):
#   MODEL=~/.cache/lazyforge/gemma-3-270m-q4_k_m.gguf PROMPT_IDS=2,818,5279,529,7001,563 bench/compare.sh
#
# Environment:
#   MODEL            GGUF file (default: the SmolLM2 test model in lazyforge's cache)
#   PROMPT_IDS       the decode prompt's ids (default: SmolLM2's "The capital of France is")
#   LF               lazyforge's example binary (default target/release/examples/llama)
#   LLAMA_BENCH      llama.cpp's llama-bench (default /work/peers/llama-bench)
#   LLAMACPP_DECODE  bench/peers/llamacpp_decode.c built against libllama (default
#                    /work/peers/llamacpp_decode; its header says how to build it)
#   THREADS          threads for both (default 2)
#   N                runs of each (default 5)
#   PREFILL_TOKENS   default 128;  DECODE_TOKENS  default 64
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LAZYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lazyforge}
MODEL=${MODEL:-$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPT_IDS=${PROMPT_IDS:-504,3575,282,4649,314}
LF=${LF:-$ROOT/target/release/examples/llama}
LLAMA_BENCH=${LLAMA_BENCH:-/work/peers/llama-bench}
LLAMACPP_DECODE=${LLAMACPP_DECODE:-/work/peers/llamacpp_decode}
THREADS=${THREADS:-2}
N=${N:-5}
PREFILL_TOKENS=${PREFILL_TOKENS:-128}
DECODE_TOKENS=${DECODE_TOKENS:-64}

for exe in "$LF" "$LLAMA_BENCH" "$LLAMACPP_DECODE"; do
  [ -x "$exe" ] || { echo "compare.sh: $exe is not an executable (see the header)" >&2; exit 2; }
done
[ -f "$MODEL" ] || { echo "compare.sh: no model at $MODEL" >&2; exit 2; }

# The long prompt: the short prompt's ids repeated to PREFILL_TOKENS ids.
LONG_IDS=$(python3 -c "import sys; ids=sys.argv[1].split(','); n=int(sys.argv[2]); print(','.join((ids*n)[:n]))" "$PROMPT_IDS" "$PREFILL_TOKENS")
RAW=$(mktemp -d /tmp/compare.XXXXXX)
echo "raw outputs in $RAW" >&2

for i in $(seq 1 "$N"); do
  echo "round $i/$N" >&2
  "$LF" --model "$MODEL" --prompt-ids "$LONG_IDS" --max-tokens 1 --load eager --json \
    --threads "$THREADS" > "$RAW/lf_prefill.$i" 2>/dev/null
  "$LLAMA_BENCH" -m "$MODEL" -p "$PREFILL_TOKENS" -n 0 -t "$THREADS" -r 1 -o json \
    > "$RAW/ll_prefill.$i" 2>/dev/null
  /usr/bin/time -f "%M" -o "$RAW/lf_rss.$i" "$LF" --model "$MODEL" --prompt-ids "$PROMPT_IDS" \
    --max-tokens "$DECODE_TOKENS" --json --threads "$THREADS" > "$RAW/lf_decode.$i" 2>/dev/null
  /usr/bin/time -f "%M" -o "$RAW/ll_rss.$i" "$LLAMACPP_DECODE" "$MODEL" "$DECODE_TOKENS" \
    "$PROMPT_IDS" > "$RAW/ll_decode.$i" 2>/dev/null
done

python3 - "$RAW" "$N" "$MODEL" "$THREADS" <<'PY'
import json, re, statistics, sys
raw, n, model, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def read(name, i):
    return open(f"{raw}/{name}.{i}").read()
rows = {"prefill tok/s": ([], []), "decode tok/s": ([], []), "peak RSS (MiB)": ([], [])}
lf_ids, ll_ids = None, None
for i in range(1, n + 1):
    rows["prefill tok/s"][0].append(json.loads(read("lf_prefill", i))["stats"]["prefill_tokens_per_s"])
    rows["prefill tok/s"][1].append(json.loads(read("ll_prefill", i))[0]["avg_ts"])
    d = json.loads(read("lf_decode", i))
    rows["decode tok/s"][0].append(d["stats"]["decode_tokens_per_s"])
    lf_ids = d["generated_ids"][:16]
    out = read("ll_decode", i)
    rows["decode tok/s"][1].append(float(re.search(r"decode ([0-9.]+) tok/s", out).group(1)))
    ll_ids = [int(x) for x in re.search(r"ids: ([0-9 ]+)", out).group(1).split()]
    for k, name in ((0, "lf_rss"), (1, "ll_rss")):
        rows["peak RSS (MiB)"][k].append(int(read(name, i).split()[-1]) / 1024)
print(f"{model}, {threads} threads, {n} alternating runs each: median (min–max)\n")
print("| metric | lazyforge | llama.cpp | lazyforge / llama.cpp |")
print("|---|---:|---:|---:|")
for metric, (a, b) in rows.items():
    fa, fb = statistics.median(a), statistics.median(b)
    print(f"| {metric} | {fa:.1f} ({min(a):.1f}–{max(a):.1f}) | {fb:.1f} ({min(b):.1f}–{max(b):.1f}) | {fa / fb:.2f} |")
same = sum(1 for x, y in zip(lf_ids, ll_ids) if x == y) if lf_ids and ll_ids else 0
print(f"\nfirst 16 greedy ids: lazyforge {lf_ids}\n                     llama.cpp {ll_ids[:16]} ({same} equal at the same positions)")
PY
