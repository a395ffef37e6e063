#!/usr/bin/env bash
# Residency benchmark: lazyforge (lazy / prefetch / eager loading, memory budgets) against
# llama.cpp on the same GGUF file, 2 threads, runs alternating between the two.
#
#   1. First token, cold and warm: whole-process wall time (start → exit after printing one
#      token), measured from outside. Cold = the file's pages are dropped from the OS page
#      cache before every run (posix_fadvise DONTNEED, the same for both peers); warm = every
#      configuration runs once untimed first.
#   2. Peak RSS of those runs (/usr/bin/time -f %M).
#   3. Decode tokens/s over DECODE_TOKENS tokens under budgets (lazyforge --budget B), lazyforge
#      --load eager without a budget, and llama.cpp; with lazyforge's evictions, reloads and
#      peak resident bytes. A budget lazyforge refuses (below what one module needs) is shown
#      as "refused: <its message>" and the other runs go on.
#
# Prints one markdown table per section: medians with (min–max) over N runs, and the ratio
# lazyforge / llama.cpp of the medians.
#
# Usage (from anywhere; build both programs first):
#   cargo build --release --example llama
#   bench/residency.sh                       # N=5, all sections
#   N=9 SECTIONS=decode BUDGETS="100% 50%" bench/residency.sh
#   REPORT_ONLY=/tmp/residency.XXXX bench/residency.sh   # re-print tables from saved runs
#
# Environment:
#   MODEL            GGUF file (default ~/.cache/lazyforge/SmolLM2-135M-Instruct.Q4_1.gguf;
#                    tools/fetch_test_model.sh fetches it)
#   LF               lazyforge's example binary (default target/release/examples/llama in
#                    this repository)
#   LLAMACPP_DECODE  bench/peers/llamacpp_decode.c built against libllama (see its header and
#                    BENCHMARKS.md; default /work/peers/llamacpp_decode)
#   N                repetitions per configuration (default 5)
#   SECTIONS         any of "first decode" (default both; "first" covers sections 1 and 2)
#   BUDGETS          lazyforge budgets for section 3 (default "100% 60% 30%")
#   DECODE_TOKENS    tokens generated in section 3 (default 64)
#   RAW              folder for the raw outputs (default a new /tmp/residency.XXXXXX)
#   REPORT_ONLY      a RAW folder of an earlier run: print its tables, run nothing
#   WAIT_IDLE        if set (a percentage, e.g. 90), wait before each run until the machine
#                    is that idle over 0.5 s, at most WAIT_MAX seconds (default 600)
#
# Needs bash ≥ 5 (EPOCHREALTIME), python3, GNU time at /usr/bin/time (package `time`);
# fincore (util-linux) is used, when present, to check that cold runs really start cold.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${MODEL:-$HOME/.cache/lazyforge/SmolLM2-135M-Instruct.Q4_1.gguf}
LF=${LF:-$ROOT/target/release/examples/llama}
LLAMACPP_DECODE=${LLAMACPP_DECODE:-/work/peers/llamacpp_decode}
N=${N:-5}
SECTIONS=${SECTIONS:-"first decode"}
BUDGETS=${BUDGETS:-"100% 60% 30%"}
DECODE_TOKENS=${DECODE_TOKENS:-64}
THREADS=2
IDS=504,3575,282,4649,314

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *)
        echo "residency.sh: no arguments are taken (see --help); got '$1'" >&2
        exit 2
        ;;
esac

die() {
    echo "residency.sh: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Report: every number is parsed from the saved outputs in $RAW, so REPORT_ONLY can redo it.
report() {
    python3 - "$1" <<'PY'
import json, os, re, statistics, sys

raw = sys.argv[1]
rows = []
with open(os.path.join(raw, "results.tsv")) as f:
    for line in f:
        sec, cfg, temp, rep, wall_us, rss_kib, cached, idle, base = line.rstrip("\n").split("\t")
        rows.append(dict(sec=sec, cfg=cfg, temp=temp, rep=int(rep), wall_ms=int(wall_us) / 1e3,
                         rss_mib=int(rss_kib) / 1024, cached=None if cached == "" else int(cached),
                         idle=int(idle), base=base))
meta = {}
with open(os.path.join(raw, "meta.txt")) as f:
    for line in f:
        k, _, v = line.rstrip("\n").partition("=")
        meta[k] = v

LLAMA_RE = re.compile(r"llama\.cpp: open\+context ([\d.]+) ms, first token ([\d.]+) ms, "
                      r"decode ([\d.]+|inf|nan) tok/s \((\d+) tokens\)")

def parse(r):
    """Adds what the program printed: lazyforge's --json stats, llama.cpp's summary line."""
    text = open(r["base"] + ".out").read()
    if r["cfg"].startswith("llama.cpp"):
        m = LLAMA_RE.search(text)
        if not m:
            sys.exit(f"cannot parse llama.cpp output {r['base']}.out")
        ids = re.search(r"^ids:([ \d]*)$", text, re.M)
        r.update(inproc_ms=float(m.group(1)) + float(m.group(2)), tok_s=float(m.group(3)),
                 tokens=int(m.group(4)) + 1,
                 ids=[int(x) for x in ids.group(1).split()] if ids else [])
    else:
        j = json.loads(text)
        s = j["stats"]
        r.update(inproc_ms=s["open_ms"] + (s.get("materialize_ms") or 0) + s["first_token_ms"],
                 tok_s=s.get("decode_tokens_per_s"), evictions=s.get("evictions"),
                 reloads=s.get("reloads"), peak_res_mb=(s.get("peak_resident_bytes") or 0) / 1e6,
                 budget_mb=None if s.get("budget_bytes") is None else s["budget_bytes"] / 1e6,
                 model_mb=s.get("model_bytes", 0) / 1e6, ids=j["generated_ids"],
                 tokens=len(j["generated_ids"]))
    return r

rows = [parse(r) for r in rows]

def vals(sec, cfg, temp, key):
    return [r[key] for r in rows
            if r["sec"] == sec and r["cfg"] == cfg and r["temp"] == temp and r.get(key) is not None]

def med(v):
    return statistics.median(v) if v else None

def fmt(v, digits=1):
    if not v:
        return "—"
    m, lo, hi = med(v), min(v), max(v)
    f = f"{{:.{digits}f}}"
    if f.format(lo) == f.format(hi):
        return f.format(m)
    return f"{f.format(m)} ({f.format(lo)}–{f.format(hi)})"

def ratio(a, b, digits=2):
    if not a or not b or med(b) == 0:
        return "—"
    return f"{med(a) / med(b):.{digits}f}"

def read_tsv(name):
    path = os.path.join(raw, name)
    if not os.path.exists(path):
        return []
    return [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]

failed = {(sec, cfg): msg for sec, cfg, msg in read_tsv("failures.tsv")}
ran = {(r["sec"], r["cfg"]) for r in rows} | set(failed)

def cfgs(sec):
    seen = [c for s, c in read_tsv("configs.tsv") if s == sec and (s, c) in ran]
    for r in rows:
        if r["sec"] == sec and r["cfg"] not in seen:
            seen.append(r["cfg"])
    return seen

print(f"# lazyforge vs llama.cpp: residency benchmark\n")
print(f"- date: {meta['date']}")
print(f"- machine: {meta['nproc']} CPUs, {meta['cpu']}, Linux {meta['kernel']}, "
      f"{meta['mem']}; load average at start {meta['load_start']}, at end "
      f"{meta.get('load_end', '?')}")
print(f"- model: {meta['model']} (file {int(meta['model_bytes']) / 1e6:.1f} MB)")
print(f"- lazyforge: {meta['lf']} ({meta['lf_rev']})")
print(f"- llama.cpp: {meta['llamacpp']}")
print(f"- {meta['threads']} threads, N = {meta['n']} runs per configuration, alternating; "
      f"medians with (min–max); prompt ids {meta['ids']}, greedy")
print(f"- raw outputs: {raw}")
idles = [r["idle"] for r in rows]
if idles:
    print(f"- machine idle in the 0.5 s before each run: median {med(idles):.0f}%, min "
          f"{min(idles)}% (llama.cpp's spinning OpenMP threads slow down badly when the "
          f"cores are shared; trust runs on an idle machine)")

ref = "llama.cpp"
warnings = []

if any(r["sec"] == "first" for r in rows):
    cs = cfgs("first")
    if cs:
        print("\n## 1. First token: process start → exit after printing 1 token (ms)\n")
        print("Cold: the file's pages dropped from the page cache before each run. Warm: after "
              "one untimed run of each configuration. In-process: the program's own open (+ "
              "materialize) + first token, warm.\n")
        print("| run | cold (ms) | warm (ms) | in-process, warm (ms) | cold / llama.cpp "
              "| warm / llama.cpp |")
        print("|---|---:|---:|---:|---:|---:|")
        for c in cs:
            cold, warm = vals("first", c, "cold", "wall_ms"), vals("first", c, "warm", "wall_ms")
            inproc = vals("first", c, "warm", "inproc_ms")
            rc = ratio(cold, vals("first", ref, "cold", "wall_ms")) if c != ref else "1"
            rw = ratio(warm, vals("first", ref, "warm", "wall_ms")) if c != ref else "1"
            print(f"| {c} | {fmt(cold)} | {fmt(warm)} | {fmt(inproc)} | {rc} | {rw} |")
        print("\n## 2. Peak RSS of the first-token runs (MiB, /usr/bin/time %M)\n")
        print("| run | warm (MiB) | cold (MiB) | warm / llama.cpp |")
        print("|---|---:|---:|---:|")
        for c in cs:
            warm, cold = vals("first", c, "warm", "rss_mib"), vals("first", c, "cold", "rss_mib")
            rw = ratio(warm, vals("first", ref, "warm", "rss_mib")) if c != ref else "1"
            print(f"| {c} | {fmt(warm)} | {fmt(cold)} | {rw} |")
        cached = [r["cached"] for r in rows if r["temp"] == "cold" and r["cached"] is not None]
        if cached:
            worst = max(cached)
            print(f"\nCold check (fincore): at most {worst / 1e6:.2f} MB of the file were still "
                  f"cached after a drop.")
            if worst > 0.05 * int(meta["model_bytes"]):
                warnings.append("some cold runs started with >5% of the file cached (another "
                                "process maps it?); cold numbers are not cold")

if any(r["sec"] == "decode" for r in rows) or any(s == "decode" for s, _ in failed):
    cs = cfgs("decode")
    eager = "lazyforge --load eager"
    print(f"\n## 3. Decode, {meta['decode_tokens']} tokens, warm page cache\n")
    print("lazyforge `--budget B` uses the default load mode; budget and peak resident are "
          "lazyforge's own accounting of materialized weights (MB = 10^6 bytes).\n")
    print("| run | decode (tok/s) | / llama.cpp | / lazyforge eager | tokens | evictions "
          "| reloads | peak resident (MB) | budget (MB) | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cs:
        if ("decode", c) in failed and not vals("decode", c, "warm", "tok_s"):
            print(f"| {c} | refused: {failed[('decode', c)].removeprefix('llama: error: ')} "
                  f"| | | | | | | | |")
            continue
        t = vals("decode", c, "warm", "tok_s")
        r_ref = ratio(t, vals("decode", ref, "warm", "tok_s")) if c != ref else "1"
        r_eag = ratio(t, vals("decode", eager, "warm", "tok_s")) if c != eager else "1"
        ev, rl = vals("decode", c, "warm", "evictions"), vals("decode", c, "warm", "reloads")
        pr, bu = vals("decode", c, "warm", "peak_res_mb"), vals("decode", c, "warm", "budget_mb")
        rss = vals("decode", c, "warm", "rss_mib")
        tk = vals("decode", c, "warm", "tokens")
        print(f"| {c} | {fmt(t)} | {r_ref} | {r_eag} | {fmt(tk, 0)} | {fmt(ev, 0)} | {fmt(rl, 0)} "
              f"| {fmt(pr) if c != ref else '—'} | {fmt(bu) if bu else '—'} | {fmt(rss)} |")

# Greedy ids. Every lazyforge run (any load mode or budget) must produce the same ids; llama.cpp
# (which prints its first 16) may drift from them after a few tokens, as its CPU kernels
# quantize activations: shown, not checked.
notes = []
for sec in ("first", "decode"):
    lf = [r for r in rows if r["sec"] == sec and r["cfg"] != ref]
    if lf:
        want = lf[0]["ids"]
        for r in lf:
            if r["ids"] != want:
                warnings.append(f"{sec}: lazyforge runs disagree: {r['cfg']} run {r['rep']} "
                                f"generated {r['ids'][:16]}, {lf[0]['cfg']} {want[:16]}")
                break
    lc = [r for r in rows if r["sec"] == sec and r["cfg"] == ref]
    if lf and lc:
        a, b = lf[0]["ids"], lc[0]["ids"]
        n = min(len(a), len(b))
        same = next((k for k in range(n) if a[k] != b[k]), n)
        notes.append(f"{sec}: lazyforge and llama.cpp agree on {same} of the first {n} "
                     f"greedy ids")
        if sec == "first" and same < n:
            warnings.append(f"first: the first token differs (lazyforge {a[0]}, llama.cpp {b[0]})")
short = [r for r in rows if r["sec"] == "decode" and r["cfg"] != ref
         and r.get("ids") is not None and len(r["ids"]) < int(meta["decode_tokens"])]
if short:
    notes.append(f"decode: lazyforge stops at the end-of-sequence token ({short[0]['cfg']}: "
                 f"after {len(short[0]['ids'])} tokens); llama.cpp's peer ignores it and decodes "
                 f"all {meta['decode_tokens']}; the rates are per decoded token")
print()
if rows:
    print("Greedy ids: every lazyforge run generated the same ids." if not any(
        "disagree" in w for w in warnings) else "Greedy ids: see the warnings.")
for n in notes:
    print(f"- {n}")
for w in warnings:
    print(f"\n**warning**: {w}")
PY
}

if [[ -n ${REPORT_ONLY:-} ]]; then
    report "$REPORT_ONLY"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash ≥ 5 (EPOCHREALTIME)"
[[ -f $MODEL ]] || die "no model at $MODEL (run tools/fetch_test_model.sh, or set MODEL)"
[[ -x $LF ]] || die "no lazyforge binary at $LF (cargo build --release --example llama, or set LF)"
[[ -x $LLAMACPP_DECODE ]] || die "no llama.cpp peer at $LLAMACPP_DECODE (build \
bench/peers/llamacpp_decode.c, see its header; or set LLAMACPP_DECODE)"
[[ -x /usr/bin/time ]] || die "needs GNU time at /usr/bin/time (apt-get install time)"
command -v python3 >/dev/null || die "needs python3"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"

RAW=${RAW:-$(mktemp -d /tmp/residency.XXXXXX)}
mkdir -p "$RAW"
: >"$RAW/results.tsv"
: >"$RAW/failures.tsv"
: >"$RAW/configs.tsv"
MODEL_BYTES=$(stat -c %s "$MODEL")
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -r)"
    echo "mem=$(awk '/^MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "model=$MODEL"
    echo "model_bytes=$MODEL_BYTES"
    echo "lf=$LF"
    echo "lf_rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'no git')"
    echo "llamacpp=$LLAMACPP_DECODE"
    echo "threads=$THREADS"
    echo "n=$N"
    echo "ids=$IDS"
    echo "decode_tokens=$DECODE_TOKENS"
} >"$RAW/meta.txt"

drop_cache() {
    python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)' "$MODEL"
}

# idle_pct: the whole machine's idle CPU share (%) over the next 0.5 s, from /proc/stat.
idle_pct() {
    local a b
    a=$(head -n 1 /proc/stat)
    sleep 0.5
    b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y); busy = 0; idle = 0
        for (i = 2; i <= n && i <= 9; i++) { d = y[i] - x[i]; if (i == 5 || i == 6) idle += d; else busy += d }
        t = idle + busy; if (t <= 0) { t = 1; idle = 1 }
        printf "%.0f", 100 * idle / t }'
}

# wait_quiet: with WAIT_IDLE=P, waits (at most WAIT_MAX s) until the machine is at least P%
# idle, so that runs do not share the cores with someone else's build. Prints the idle share
# last seen.
wait_quiet() {
    local idle waited=0
    idle=$(idle_pct)
    while [[ -n ${WAIT_IDLE:-} ]] && ((idle < WAIT_IDLE && waited < ${WAIT_MAX:-600})); do
        sleep 2
        waited=$((waited + 3))
        idle=$(idle_pct)
    done
    echo "$idle"
}

cached_bytes() {
    if command -v fincore >/dev/null; then
        fincore -b -n -o RES "$MODEL" | tr -d ' '
    fi
}

# run SECTION CONFIG REP cold|warm|warmup COMMAND...: times COMMAND from outside (wall, µs)
# under /usr/bin/time (peak RSS, KiB) and appends a line to results.tsv (not for warmup).
run() {
    local sec=$1 cfg=$2 rep=$3 temp=$4
    shift 4
    local base
    base="$RAW/$sec.${cfg//[^A-Za-z0-9.%-]/_}.$temp.$rep"
    local cached="" idle
    idle=$(wait_quiet)
    if [[ $temp == cold ]]; then
        drop_cache
        cached=$(cached_bytes)
    fi
    local t0=$EPOCHREALTIME
    if ! /usr/bin/time -f %M -o "$base.rss" "$@" >"$base.out" 2>"$base.err"; then
        echo "residency.sh: failed ($sec, $cfg, $temp): $*" >&2
        grep -v '^Command exited with non-zero status' "$base.err" | tail -n 5 >&2
        if [[ $cfg == "lazyforge --budget "* ]]; then
            # A budget below what one module needs is refused by lazyforge: a result, not a
            # reason to stop. The table shows lazyforge's message instead of numbers.
            printf '%s\t%s\t%s\n' "$sec" "$cfg" \
                "$(grep -v '^Command exited' "$base.err" | tail -n 1)" >>"$RAW/failures.tsv"
            FAILED["$sec|$cfg"]=1
            return 0
        fi
        exit 1
    fi
    local t1=$EPOCHREALTIME
    local us=$((${t1/./} - ${t0/./}))
    if [[ $temp != warmup ]]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sec" "$cfg" "$temp" "$rep" "$us" \
            "$(tail -n 1 "$base.rss")" "$cached" "$idle" "$base" >>"$RAW/results.tsv"
    fi
    printf '  %-32s %-6s run %d: %6d.%03d ms (machine %s%% idle before)\n' "$cfg" "$temp" "$rep" \
        $((us / 1000)) $((us % 1000)) "$idle" >&2
}

LF_COMMON=(--model "$MODEL" --prompt-ids "$IDS" --temperature 0 --threads "$THREADS" --json)

# Configurations, by name: the command of each, in the order they alternate.
declare -A CMD FAILED
first_cfgs=()
for mode in lazy prefetch eager; do
    first_cfgs+=("lazyforge --load $mode")
    CMD["first|lazyforge --load $mode"]="${LF@Q} ${LF_COMMON[*]@Q} --max-tokens 1 --load $mode"
done
first_cfgs+=("llama.cpp")
CMD["first|llama.cpp"]="${LLAMACPP_DECODE@Q} ${MODEL@Q} 1"

decode_cfgs=()
for b in $BUDGETS; do
    decode_cfgs+=("lazyforge --budget $b")
    CMD["decode|lazyforge --budget $b"]="${LF@Q} ${LF_COMMON[*]@Q} --max-tokens $DECODE_TOKENS --budget ${b@Q}"
done
decode_cfgs+=("lazyforge --load eager" "llama.cpp")
CMD["decode|lazyforge --load eager"]="${LF@Q} ${LF_COMMON[*]@Q} --max-tokens $DECODE_TOKENS --load eager"
CMD["decode|llama.cpp"]="${LLAMACPP_DECODE@Q} ${MODEL@Q} $DECODE_TOKENS"

# cycle SECTION TEMP CONFIG...: N rounds; each round runs every configuration once, the
# starting one rotating from round to round so none always follows the same neighbour.
cycle() {
    local sec=$1 temp=$2
    shift 2
    local cs=("$@") k=${#cs[@]} rep i
    for ((rep = 1; rep <= N; rep++)); do
        for ((i = 0; i < k; i++)); do
            local c=${cs[$(((i + rep - 1) % k))]}
            [[ -z ${FAILED["$sec|$c"]:-} ]] || continue
            eval "run \"\$sec\" \"\$c\" $rep $temp ${CMD["$sec|$c"]}"
        done
    done
}

warmup() {
    local sec=$1
    shift
    local c
    for c in "$@"; do
        [[ -z ${FAILED["$sec|$c"]:-} ]] || continue
        eval "run \"\$sec\" \"\$c\" 0 warmup ${CMD["$sec|$c"]}"
    done
}

for c in "${first_cfgs[@]}"; do printf 'first\t%s\n' "$c"; done >>"$RAW/configs.tsv"
for c in "${decode_cfgs[@]}"; do printf 'decode\t%s\n' "$c"; done >>"$RAW/configs.tsv"

echo "residency.sh: raw outputs in $RAW" >&2
if [[ " $SECTIONS " == *" first "* ]]; then
    echo "first token, cold:" >&2
    cycle first cold "${first_cfgs[@]}"
    echo "first token, warm:" >&2
    warmup first "${first_cfgs[@]}"
    cycle first warm "${first_cfgs[@]}"
fi
if [[ " $SECTIONS " == *" decode "* ]]; then
    echo "decode:" >&2
    warmup decode "${decode_cfgs[@]}"
    cycle decode warm "${decode_cfgs[@]}"
fi
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/meta.txt"

report "$RAW" | tee "$RAW/report.md"
