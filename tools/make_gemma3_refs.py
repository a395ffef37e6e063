#!/usr/bin/env python3
"""Reference fixtures for Gemma 3 270M (Q4_K_M GGUF), from HF transformers in float32.

transformers' GGUF loader dequantizes the file exactly (gguf-py) and subtracts the 1 that
llama.cpp's converter adds to every Gemma RMSNorm weight (Gemma normalizes with `1 + w`);
its Gemma3 modeling code is the independent implementation lazyforge is checked against.

Usage: tools/make_gemma3_refs.py [GGUF]   (default: the lazyforge cache's
       gemma-3-270m-q4_k_m.gguf; needs torch, transformers, gguf, sentencepiece, numpy)

Writes (small; rerunning rewrites the same values up to float rounding of another torch):

  fixtures/gemma3/refs.json
      "config"   what transformers read from the file and assumed (the local layers'
                 RoPE base and the 5-local-1-global pattern are not in the GGUF), so a
                 mismatch in defaults shows up in review, not as a subtle error.
      "strings"  ids of >= 10 strings (unicode, emoji, runs of spaces, newlines, digits,
                 code, a Gemma turn-format chat) from transformers' tokenizer converted
                 from the same GGUF metadata.
      "logits"   prompts (ids) with a row index into logits.npy and the top-10 ids/values;
                 one prompt is longer than 512 tokens, so the sliding window of the local
                 layers matters in prefill.
      "greedy"   greedy continuations (new ids, text, top-1/top-2 gap per step); one starts
                 from a prompt of 520+ tokens so decode crosses the window too.
  fixtures/gemma3/logits.npy  float32 [n_prompts, vocab]: last-position logits.
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.manual_seed(0)
torch.set_num_threads(max(1, os.cpu_count() or 1))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "gemma3")
cache = os.environ.get("LAZYFORGE_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lazyforge")
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(cache, "gemma-3-270m-q4_k_m.gguf")
folder, name = os.path.dirname(path), os.path.basename(path)

tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(
    folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager")
model.eval()
cfg = model.config

# The long prompt: a deterministic text of >512 tokens, so position 0 leaves the window.
LONG = " ".join(
    f"Item {i}: the {['red', 'green', 'blue', 'amber'][i % 4]} lamp number {i * 7 % 101} "
    f"stands beside door {i % 13}." for i in range(32))
CHAT = "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"

STRINGS = [
    "The capital of France is",
    "Hello, world!",
    "  leading spaces and    runs   of spaces",
    "line one\nline two\n\n\ttabbed",
    "Ünïcödé façade naïve — “quotes” ½",
    "emoji 🤖🚀 and 中文字符 and 日本語",
    "numbers 12345 3.14159 -42 1e10",
    "def f(x):\n    return x ** 2  # square",
    "<start_of_turn>user\nHi<end_of_turn>",
    "a",
    "",
    "Byte fallback: \u0007 \u00ad \U0001f9ec",
]


def ids_of(text):
    return tok(text, add_special_tokens=True)["input_ids"]


@torch.no_grad()
def last_logits(ids):
    out = model(torch.tensor([ids]), use_cache=False)
    return out.logits[0, -1].float().numpy()


@torch.no_grad()
def greedy(ids, n):
    cur = list(ids)
    new, gaps = [], []
    for _ in range(n):
        logits = model(torch.tensor([cur]), use_cache=False).logits[0, -1].float()
        top = torch.topk(logits, 2)
        new.append(int(top.indices[0]))
        gaps.append(float(top.values[0] - top.values[1]))
        cur.append(new[-1])
    return new, gaps


refs = {
    "transformers": transformers.__version__,
    "torch": torch.__version__,
    "config": {
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "intermediate_size": cfg.intermediate_size,
        "sliding_window": cfg.sliding_window,
        "layer_types": cfg.layer_types,
        "rope_parameters": cfg.rope_parameters,
        "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
        "rms_norm_eps": cfg.rms_norm_eps,
        "hidden_activation": cfg.hidden_activation,
        "final_logit_softcapping": cfg.final_logit_softcapping,
        "attn_logit_softcapping": cfg.attn_logit_softcapping,
        "tie_word_embeddings": cfg.tie_word_embeddings,
    },
    "strings": [{"text": s, "ids": ids_of(s)} for s in STRINGS],
}

prompts = ["The capital of France is", CHAT, LONG]
rows = []
refs["logits"] = []
for i, p in enumerate(prompts):
    ids = ids_of(p)
    row = last_logits(ids)
    rows.append(row)
    top = np.argsort(-row)[:10]
    refs["logits"].append({"prompt": p, "ids": ids, "row": i,
                           "top_ids": [int(t) for t in top],
                           "top_logits": [float(row[t]) for t in top]})
    print(f"logits {i}: {len(ids)} tokens, top {int(top[0])}", flush=True)
assert len(refs["logits"][2]["ids"]) > 512, "the long prompt must pass the 512-token window"

refs["greedy"] = []
for p, n in [("The capital of France is", 16), (CHAT, 16), (LONG, 8)]:
    ids = ids_of(p)
    new, gaps = greedy(ids, n)
    refs["greedy"].append({"prompt": p, "ids": ids, "new_ids": new, "gaps": gaps,
                           "text": tok.decode(new, skip_special_tokens=True)})
    print(f"greedy ({len(ids)} tokens): {tok.decode(new)!r}", flush=True)

os.makedirs(OUT, exist_ok=True)
np.save(os.path.join(OUT, "logits.npy"), np.stack(rows).astype(np.float32))
with open(os.path.join(OUT, "refs.json"), "w") as f:
    json.dump(refs, f, indent=1, ensure_ascii=False)
print("wrote", OUT)
