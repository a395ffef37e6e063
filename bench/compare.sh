#!/usr/bin/env bash
# Side by side on one GGUF file, same threads, runs alternating: lazyforge against llama.cpp
# and candle. Every round runs each program once per measurement, the starting program
# rotating from round to round so that none always follows the same neighbour.
#
# Columns (one markdown table per model; medians with (min–max) over N rounds, and the
# ratios lazyforge / peer of the medians: above 1 is better for lazyforge on tok/s, below 1 on
# ms and MiB):
#
#   prefill tok/s   a PREFILL_TOKENS-token prompt (the short prompt's ids repeated), one
#                   forward pass. lazyforge: `--load eager` (weights read before the clock
#                   starts), prefill_tokens_per_s of `--json`; llama.cpp: llama-bench -p
#                   PREFILL_TOKENS -n 0 -r 1 (its avg_ts; llama-bench runs one untimed warm-up
#                   itself); candle: `lazyforge-peer-bench --bench` (prompt ids / prefill
#                   forward; candle's from_gguf has read every weight before).
#   decode tok/s    prefill the short prompt PROMPT_IDS, then DECODE_TOKENS greedy tokens one
#                   at a time: (DECODE_TOKENS - 1) forward passes / their time. lazyforge:
#                   decode_tokens_per_s of `--json` (default load mode; it stops early at an
#                   end-of-sequence token, the peers do not); llama.cpp:
#                   bench/peers/llamacpp_decode.c; candle: `lazyforge-peer-bench --bench`.
#   open (ms)       in-process, warm page cache, from opening the file until the model is
#                   ready for its first forward pass, each as the program does it by default:
#                   lazyforge `Llama::open` etc. (metadata and tensor table; weights are read
#                   on first use, so their cost falls in the first token), llama.cpp
#                   llama_model_load_from_file + llama_init_from_model (mmap), candle
#                   gguf_file::Content::read + ModelWeights::from_gguf (reads every weight).
#                   Different amounts of work: compare the first-token rows end to end.
#   table read (µs) the GGUF header and tensor table only, no weights: median of 200 reads in
#                   one process, warm, once per model after the rounds (no spread). lazyforge `Checkpoint::open` and candle
#                   `gguf_file::Content::read` on a BufReader (both from lazyforge-peer-bench
#                   FILE); llama.cpp gguf_init_from_file, no_alloc (bench/peers/llamacpp_open.c).
#   first token     whole process, measured from outside: start → exit after generating one
#                   token from the short prompt (open, weights, prefill, exit). warm: the file
#                   read once (cat) before the warm runs of a round; cold: the file's pages
#                   dropped from the OS page cache before every run (posix_fadvise DONTNEED,
#                   as bench/residency.sh does; fincore, when present, checks it).
#   peak RSS (MiB)  of the decode runs, whole process (/usr/bin/time -f %M).
#
# Usage (build the three programs first; from anywhere):
#   cargo build --release --example llama                # lazyforge ($CARGO_TARGET_DIR honoured)
#   cargo build --release --manifest-path bench/peers/Cargo.toml   # candle: lazyforge-peer-bench
#   llama.cpp: llama-bench, and bench/peers/llamacpp_decode.c and llamacpp_open.c built
#   against its libraries (each C file's header has the command); BENCHMARKS.md says how
#   llama.cpp itself was built.
#
#   bench/compare.sh                                     # SmolLM2 and Gemma 3, N=5
#   N=3 MODELS=smollm2 bench/compare.sh
#   MODEL=/path/file.gguf PROMPT_IDS=1,2,3 bench/compare.sh   # any other file
#   REPORT_ONLY=/tmp/compare.XXXXXX bench/compare.sh     # re-print the tables of a saved run
#
# Environment:
#   MODELS           names, in order: smollm2 (SmolLM2-135M-Instruct Q4_1,
#                    tools/fetch_test_model.sh fetches it), gemma3 (Gemma 3 270M Q4_K_M,
#                    `cargo run --release --example llama -- --model gemma3-270m --max-tokens 1
#                    --prompt hi` fetches it); default "smollm2 gemma3"
#   MODEL            one GGUF file instead of MODELS; PROMPT_IDS its short prompt's ids
#                    (default SmolLM2's "The capital of France is")
#   LF               lazyforge's example binary (default
#                    ${CARGO_TARGET_DIR:-target}/release/examples/llama of this repository)
#   CANDLE           the peer crate's binary (default
#                    bench/peers/target/release/lazyforge-peer-bench)
#   LLAMA_BENCH      llama.cpp's llama-bench (default /work/peers/llama-bench)
#   LLAMACPP_DECODE  bench/peers/llamacpp_decode.c built against libllama (default
#                    /work/peers/llamacpp_decode)
#   LLAMACPP_OPEN    bench/peers/llamacpp_open.c built against ggml-base (default
#                    /work/peers/llamacpp_open)
#   PEERS            the peers to run beside lazyforge (default "llama.cpp candle"); a peer
#                    left out shows "not run" and needs no binary
#   THREADS          threads for all three (default 2)
#   N                rounds (default 5)
#   PREFILL_TOKENS   default 128;  DECODE_TOKENS  default 64
#   RAW              folder for the raw outputs (default a new /tmp/compare.XXXXXX)
#   REPORT_ONLY      a RAW folder of an earlier run: print its tables, run nothing
#
# Needs bash ≥ 5 (EPOCHREALTIME), python3, GNU time at /usr/bin/time (package `time`).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LAZYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lazyforge}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LF=${LF:-$TARGET/release/examples/llama}
CANDLE=${CANDLE:-$ROOT/bench/peers/target/release/lazyforge-peer-bench}
LLAMA_BENCH=${LLAMA_BENCH:-/work/peers/llama-bench}
LLAMACPP_DECODE=${LLAMACPP_DECODE:-/work/peers/llamacpp_decode}
LLAMACPP_OPEN=${LLAMACPP_OPEN:-/work/peers/llamacpp_open}
THREADS=${THREADS:-2}
N=${N:-5}
PREFILL_TOKENS=${PREFILL_TOKENS:-128}
DECODE_TOKENS=${DECODE_TOKENS:-64}
MODELS=${MODELS:-smollm2 gemma3}
PEERS=${PEERS-llama.cpp candle}

die() {
    echo "compare.sh: $*" >&2
    exit 2
}

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *) die "no arguments are taken (see --help); got '$1'" ;;
esac

# ---------------------------------------------------------------------------------------------
# Report: every number is parsed from the saved outputs in $RAW, so REPORT_ONLY can redo it.
report() {
    python3 - "$1" <<'PY'
import json, os, re, statistics, sys

raw = sys.argv[1]
meta = dict(l.rstrip("\n").partition("=")[::2] for l in open(os.path.join(raw, "meta.txt")))
models = [l.rstrip("\n").split("\t") for l in open(os.path.join(raw, "models.tsv")) if l.strip()]
runs = [l.rstrip("\n").split("\t") for l in open(os.path.join(raw, "results.tsv")) if l.strip()]
na = {}
if os.path.exists(os.path.join(raw, "na.tsv")):
    for l in open(os.path.join(raw, "na.tsv")):
        tag, prog, why = l.rstrip("\n").split("\t")
        na[(tag, prog)] = why

LL_RE = re.compile(r"llama\.cpp: open\+context ([\d.]+) ms, first token ([\d.]+) ms, "
                   r"decode ([\d.]+|inf|nan) tok/s")

def parse(prog, kind, base):
    """What the program printed, as {metric: value}."""
    text = open(base + ".out").read()
    if kind == "table" and prog == "llama.cpp":
        return {"llama.cpp": float(re.search(r"llama\.cpp open ([\d.]+) us", text).group(1))}
    if kind == "table":
        # | file | bytes | tensors | lazyforge | candle (File) | candle (BufReader) | ratio |
        cells = [c.strip() for c in text.strip().splitlines()[-1].strip("|").split("|")]
        us = lambda c: float(c.removesuffix("µs").strip())
        return {"lazyforge": us(cells[3]), "candle": us(cells[5])}
    if prog == "llama.cpp" and kind == "prefill":
        return {"prefill": json.loads(text)[0]["avg_ts"]}
    if prog == "llama.cpp":
        m = LL_RE.search(text)
        if not m:
            sys.exit(f"compare.sh: cannot parse llama.cpp's output {base}.out")
        ids = re.search(r"^ids:([ \d]*)$", text, re.M)
        return {"open": float(m.group(1)), "decode": float(m.group(3)),
                "ids": [int(x) for x in ids.group(1).split()] if ids else []}
    j = json.loads(text)
    s = j.get("stats", j)  # lazyforge nests its numbers under "stats", the candle peer not
    return {"open": s["open_ms"], "prefill": s["prefill_tokens_per_s"],
            "decode": s["decode_tokens_per_s"], "ids": j["generated_ids"]}

progs = ["lazyforge", "llama.cpp", "candle"]
# vals[(tag, prog, metric)] = [numbers]
vals, ids, cached = {}, {}, []
for tag, prog, kind, rep, wall_us, rss_kib, cache, base in runs:
    p = parse(prog, kind, base)
    add = lambda metric, v: vals.setdefault((tag, prog, metric), []).append(v)
    if kind == "table":
        for who, v in p.items():
            vals.setdefault((tag, who, "table"), []).append(v)
    elif kind == "prefill":
        add("prefill", p["prefill"])
    elif kind == "decode":
        add("decode", p["decode"])
        add("rss", int(rss_kib) / 1024)
        ids.setdefault((tag, prog), p["ids"])
    else:
        add(f"first_{kind}", int(wall_us) / 1e3)
        if kind == "warm":
            add("open", p["open"])
    if cache:
        cached.append((int(cache), tag))

def med(v):
    return statistics.median(v) if v else None

ran = ["lazyforge"] + meta.get("peers", "llama.cpp candle").split()

def cell(tag, prog, metric):
    if prog not in ran:
        return "not run"
    if (tag, prog) in na and metric != "table":
        return "n/a"
    v = vals.get((tag, prog, metric))
    if not v:
        return "—"
    digits = 0 if metric.startswith("first") or metric == "table" else 1
    f = f"{{:.{digits}f}}"
    m, lo, hi = f.format(med(v)), f.format(min(v)), f.format(max(v))
    return m if lo == hi else f"{m} ({lo}–{hi})"

def ratio(tag, prog, metric):
    a, b = vals.get((tag, "lazyforge", metric)), vals.get((tag, prog, metric))
    if not a or not b or ((tag, prog) in na and metric != "table") or med(b) == 0:
        return "—"
    r = med(a) / med(b)
    return f"{r:.2f}" if r >= 0.1 else f"{r:.3f}"

rows = [("prefill", f"prefill tok/s ({meta['prefill_tokens']}-token prompt)"),
        ("decode", f"decode tok/s ({meta['decode_tokens']} tokens)"),
        ("open", "open, in-process, warm (ms)"),
        ("first_warm", "first token, whole process, warm (ms)"),
        ("first_cold", "first token, whole process, cold (ms)"),
        ("table", "GGUF header + tensor table read, warm (µs)"),
        ("rss", "peak RSS of the decode runs (MiB)")]

print(f"# lazyforge vs llama.cpp vs candle\n")
print(f"- date: {meta['date']}; machine: {meta['nproc']} CPUs, {meta['cpu']}, {meta['mem']}; "
      f"load average at start {meta['load_start']}, at end {meta.get('load_end', '?')}")
print(f"- lazyforge: {meta['lf']} ({meta['lf_rev']}); llama.cpp: {meta['llama_bench']}, "
      f"{meta['llamacpp_decode']}, {meta.get('llamacpp_open', '?')}; candle: {meta['candle']} (candle-core "
      f"{meta['candle_version']})")
print(f"- {meta['threads']} threads for every program, N = {meta['n']} rounds, alternating; "
      f"medians with (min–max); greedy; raw outputs in {raw}")
for tag, path, prompt in models:
    print(f"\n## {os.path.basename(path)}\n")
    print(f"Short prompt ids {prompt}.\n")
    print("| metric | lazyforge | llama.cpp | candle | lazyforge / llama.cpp "
          "| lazyforge / candle |")
    print("|---|---:|---:|---:|---:|---:|")
    for metric, label in rows:
        print(f"| {label} | {cell(tag, 'lazyforge', metric)} | {cell(tag, 'llama.cpp', metric)} "
              f"| {cell(tag, 'candle', metric)} | {ratio(tag, 'llama.cpp', metric)} "
              f"| {ratio(tag, 'candle', metric)} |")
    print()
    for prog in progs:
        if (tag, prog) in na:
            print(f"- {prog}: n/a, {na[(tag, prog)]}")
    lf = ids.get((tag, "lazyforge"), [])
    for prog in progs[1:]:
        other = ids.get((tag, prog))
        if other is None:
            continue
        n = min(len(lf), len(other), 16)
        same = next((k for k in range(n) if lf[k] != other[k]), n)
        print(f"- greedy ids: lazyforge and {prog} agree on the first {same} of {n} compared "
              f"(lazyforge {lf[:16]}, {prog} {other[:16]})")
    if lf and len(lf) < int(meta["decode_tokens"]):
        print(f"- lazyforge stopped at an end-of-sequence token after {len(lf)} tokens; the "
              f"peers decode all {meta['decode_tokens']}; the rates are per decoded token")
    worst = max((c for c, t in cached if t == tag), default=None)
    size = os.path.getsize(path) if os.path.exists(path) else 0
    if worst is not None:
        note = f"- cold check (fincore): at most {worst / 1e6:.2f} MB of the file cached after a drop"
        if size and worst > 0.05 * size:
            note += " — **more than 5%: cold numbers are not cold (another process maps it?)**"
        print(note)
PY
}

if [[ -n ${REPORT_ONLY:-} ]]; then
    report "$REPORT_ONLY"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash ≥ 5 (EPOCHREALTIME)"
[[ -x /usr/bin/time ]] || die "needs GNU time at /usr/bin/time (apt-get install time)"
command -v python3 >/dev/null || die "needs python3"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer, got '$THREADS'"
[[ -x $LF ]] || die "no lazyforge binary at $LF (cargo build --release --example llama; or set LF)"
for p in $PEERS; do
    [[ $p == llama.cpp || $p == candle ]] || die "unknown peer '$p' in PEERS (llama.cpp, candle)"
done
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }
if has_peer candle; then
    [[ -x $CANDLE ]] || die "no candle peer at $CANDLE (cargo build --release --manifest-path \
bench/peers/Cargo.toml [--target-dir DIR]; or set CANDLE)"
fi
if has_peer llama.cpp; then
    [[ -x $LLAMA_BENCH ]] || die "no llama-bench at $LLAMA_BENCH (build llama.cpp's \
llama-bench target, see BENCHMARKS.md; or set LLAMA_BENCH)"
    [[ -x $LLAMACPP_DECODE ]] || die "no llama.cpp decode peer at $LLAMACPP_DECODE (build \
bench/peers/llamacpp_decode.c against libllama, see its header; or set LLAMACPP_DECODE)"
    [[ -x $LLAMACPP_OPEN ]] || die "no llama.cpp open peer at $LLAMACPP_OPEN (build \
bench/peers/llamacpp_open.c against ggml-base, see its header; or set LLAMACPP_OPEN)"
fi

# The models: tag, file, short prompt ids.
declare -a TAGS
declare -A FILE IDS
if [[ -n ${MODEL:-} ]]; then
    TAGS=(model)
    FILE[model]=$MODEL
    IDS[model]=${PROMPT_IDS:-504,3575,282,4649,314}
else
    for m in $MODELS; do
        case $m in
            smollm2)
                FILE[$m]=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
                IDS[$m]=${PROMPT_IDS:-504,3575,282,4649,314}
                how="run tools/fetch_test_model.sh"
                ;;
            gemma3)
                FILE[$m]=$CACHE/gemma-3-270m-q4_k_m.gguf
                IDS[$m]=2,818,5279,529,7001,563
                how="run cargo run --release --example llama -- --model gemma3-270m --max-tokens 1 --prompt hi"
                ;;
            *) die "unknown model '$m' in MODELS (smollm2, gemma3; or set MODEL to a file)" ;;
        esac
        [[ -f ${FILE[$m]} ]] || die "no $m model at ${FILE[$m]} ($how)"
        TAGS+=("$m")
    done
fi
for t in "${TAGS[@]}"; do
    [[ -f ${FILE[$t]} ]] || die "no model at ${FILE[$t]}"
    [[ ${IDS[$t]} =~ ^[0-9]+(,[0-9]+)*$ ]] || die "prompt ids must be ID,ID,...; got '${IDS[$t]}'"
done

# The llama.cpp decode peer takes the thread count as its 4th argument since it prints it;
# an older build ignores it and runs 2 threads.
if has_peer llama.cpp; then
    probe=$("$LLAMACPP_DECODE" "${FILE[${TAGS[0]}]}" 1 "${IDS[${TAGS[0]}]}" "$THREADS" 2>/dev/null) \
        || die "$LLAMACPP_DECODE fails on ${FILE[${TAGS[0]}]}"
    [[ $probe == *", $THREADS threads"* ]] || die "$LLAMACPP_DECODE does not take a thread \
count (built from an older bench/peers/llamacpp_decode.c): rebuild it, see its header"
fi

RAW=${RAW:-$(mktemp -d /tmp/compare.XXXXXX)}
mkdir -p "$RAW"
: >"$RAW/results.tsv"
: >"$RAW/na.tsv"
: >"$RAW/models.tsv"
for t in "${TAGS[@]}"; do printf '%s\t%s\t%s\n' "$t" "${FILE[$t]}" "${IDS[$t]}"; done >"$RAW/models.tsv"
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "mem=$(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "lf=$LF"
    echo "lf_rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'no git')"
    echo "llama_bench=$LLAMA_BENCH"
    echo "llamacpp_decode=$LLAMACPP_DECODE"
    echo "llamacpp_open=$LLAMACPP_OPEN"
    echo "candle=$CANDLE"
    echo "candle_version=$(grep -A1 '^name = "candle-core"' "$ROOT/bench/peers/Cargo.lock" \
        | sed -n 's/^version = "\(.*\)"/\1/p')"
    echo "threads=$THREADS"
    echo "peers=$PEERS"
    echo "n=$N"
    echo "prefill_tokens=$PREFILL_TOKENS"
    echo "decode_tokens=$DECODE_TOKENS"
} >"$RAW/meta.txt"

drop_cache() {
    python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)' "$1"
}

cached_bytes() {
    if command -v fincore >/dev/null; then
        fincore -b -n -o RES "$1" | tr -d ' '
    fi
}

# command_for TAG PROGRAM KIND: the command line (words in CMD) of one run.
command_for() {
    local t=$1 prog=$2 kind=$3 file=${FILE[$1]} ids=${IDS[$1]}
    local long
    long=$(python3 -c "import sys; ids=sys.argv[1].split(','); n=int(sys.argv[2]); print(','.join((ids*n)[:n]))" "$ids" "$PREFILL_TOKENS")
    local tokens=1
    [[ $kind == decode ]] && tokens=$DECODE_TOKENS
    case $prog/$kind in
        lazyforge/prefill) CMD=("$LF" --model "$file" --prompt-ids "$long" --max-tokens 1 --load eager --json --threads "$THREADS") ;;
        lazyforge/*) CMD=("$LF" --model "$file" --prompt-ids "$ids" --max-tokens "$tokens" --json --threads "$THREADS") ;;
        llama.cpp/table) CMD=("$LLAMACPP_OPEN" "$file") ;;
        candle/table) CMD=("$CANDLE" "$file") ;;
        llama.cpp/prefill) CMD=("$LLAMA_BENCH" -m "$file" -p "$PREFILL_TOKENS" -n 0 -t "$THREADS" -r 1 -o json) ;;
        llama.cpp/*) CMD=("$LLAMACPP_DECODE" "$file" "$tokens" "$ids" "$THREADS") ;;
        candle/prefill) CMD=("$CANDLE" --bench "$file" --prompt-ids "$long" --max-tokens 1 --threads "$THREADS") ;;
        candle/*) CMD=("$CANDLE" --bench "$file" --prompt-ids "$ids" --max-tokens "$tokens" --threads "$THREADS") ;;
    esac
}

# run TAG PROGRAM KIND REP: one timed run (wall µs from outside, peak RSS KiB), appended to
# results.tsv. KIND: cold | warm (first token), prefill, decode, table (the GGUF table read;
# the candle peer's run times lazyforge's too).
declare -A NA
run() {
    local t=$1 prog=$2 kind=$3 rep=$4
    [[ -z ${NA["$t|$prog"]:-} ]] || return 0
    local base="$RAW/$t.$prog.$kind.$rep" cached=""
    command_for "$t" "$prog" "$kind"
    if [[ $kind == cold ]]; then
        drop_cache "${FILE[$t]}"
        cached=$(cached_bytes "${FILE[$t]}")
    fi
    local t0=$EPOCHREALTIME status=0
    /usr/bin/time -f %M -o "$base.rss" "${CMD[@]}" >"$base.out" 2>"$base.err" || status=$?
    local t1=$EPOCHREALTIME
    if ((status == 3)) && [[ $prog == candle ]] && grep -q '"error"' "$base.out"; then
        # candle has no model for this architecture: a result ("n/a" and why), not a failure.
        local why
        why=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$base.out")
        printf '%s\t%s\t%s\n' "$t" "$prog" "$why" >>"$RAW/na.tsv"
        NA["$t|$prog"]=1
        echo "  $prog: n/a on $t ($why)" >&2
        return 0
    fi
    if ((status != 0)); then
        echo "compare.sh: failed (status $status): ${CMD[*]}" >&2
        grep -v '^Command exited with non-zero status' "$base.err" | tail -n 5 >&2
        exit 1
    fi
    local us=$((${t1/./} - ${t0/./}))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$prog" "$kind" "$rep" "$us" \
        "$(tail -n 1 "$base.rss")" "$cached" "$base" >>"$RAW/results.tsv"
    printf '  %-9s %-7s %6d.%03d ms\n' "$prog" "$kind" $((us / 1000)) $((us % 1000)) >&2
}

# shellcheck disable=SC2206 # PEERS is a list of words
PROGS=(lazyforge $PEERS)
echo "compare.sh: raw outputs in $RAW" >&2
for t in "${TAGS[@]}"; do
    for ((rep = 1; rep <= N; rep++)); do
        echo "$t: round $rep/$N" >&2
        order=()
        for ((i = 0; i < ${#PROGS[@]}; i++)); do
            order+=("${PROGS[$(((i + rep - 1) % ${#PROGS[@]}))]}")
        done
        for p in "${order[@]}"; do run "$t" "$p" cold "$rep"; done
        cat "${FILE[$t]}" >/dev/null
        for kind in warm prefill decode; do
            for p in "${order[@]}"; do run "$t" "$p" "$kind" "$rep"; done
        done
    done
    # The table read: once per model, each program's own median of 200 reads.
    for p in llama.cpp candle; do
        if has_peer "$p"; then run "$t" "$p" table 1; fi
    done
done
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.txt"

report "$RAW" | tee "$RAW/report.md"
