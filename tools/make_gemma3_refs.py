#!/usr/bin/env python3
"""Reference fixtures for Gemma 3 270M (Q4_K_M GGUF), from HF transformers in float32.

transformers' GGUF loader dequantizes the file exactly (gguf-py) and subtracts the 1 that
llama.cpp's converter adds to every Gemma RMSNorm weight (Gemma normalizes with `1 + w`);
its Gemma3 modeling code is the independent implementation lazyforge is checked against.

Usage: tools/make_gemma3_refs.py [--strings-only] [GGUF]   (default: the lazyforge cache's
       gemma-3-270m-q4_k_m.gguf; needs torch, transformers, gguf, sentencepiece, numpy).
       --strings-only rewrites only the "strings" entries of an existing refs.json.

Writes (small; rerunning rewrites the same values up to float rounding of another torch):

  fixtures/gemma3/refs.json
      "config"   what transformers read from the file and assumed (the local layers'
                 RoPE base and the 5-local-1-global pattern are not in the GGUF), so a
                 mismatch in defaults shows up in review, not as a subtle error.
      "strings"  ids of >= 10 strings (unicode, emoji, runs of spaces, newlines, digits,
                 code, a Gemma turn-format chat): "ids" from SentencePiece itself, run on a
                 model built from the file's pieces, scores and token types (the reference:
                 transformers converts the vocabulary to BPE merges and may split long runs
                 of spaces differently), and "transformers_ids" from transformers' tokenizer
                 converted from the same metadata, for comparison.
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
args = [a for a in sys.argv[1:] if a != "--strings-only"]
STRINGS_ONLY = "--strings-only" in sys.argv[1:]
path = args[0] if args else os.path.join(cache, "gemma-3-270m-q4_k_m.gguf")
folder, name = os.path.dirname(path), os.path.basename(path)

tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)


def sentencepiece_from_gguf(gguf_path):
    """A SentencePiece BPE model holding the GGUF file's pieces, scores and types, with
    Gemma's normalizer settings (no dummy prefix, whitespace kept) and byte fallback."""
    import gguf
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    r = gguf.GGUFReader(gguf_path)
    field = lambda k: r.fields[k]
    toks = field("tokenizer.ggml.tokens")
    pieces = [bytes(toks.parts[i]).decode("utf-8") for i in toks.data]
    scores = [float(field("tokenizer.ggml.scores").parts[i][0]) for i in field("tokenizer.ggml.scores").data]
    types = [int(field("tokenizer.ggml.token_type").parts[i][0]) for i in field("tokenizer.ggml.token_type").data]
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 3, 2, 1, 0
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    # GGUF token types are SentencePiece's piece types (1 normal, 2 unknown, 3 control,
    # 4 user defined, 5 unused, 6 byte).
    for p, sc, t in zip(pieces, scores, types):
        m.pieces.add(piece=p, score=sc, type=t)
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    # Control (3) and user-defined (4) pieces are matched whole in the raw text first, as
    # llama.cpp does (Gemma's runs of spaces are user-defined pieces of literal spaces,
    # which SentencePiece alone, matching after escaping spaces to U+2581, never sees).
    whole = sorted((p for p, t in zip(pieces, types) if t in (3, 4)), key=len, reverse=True)
    return sp, whole, {p: i for i, p in enumerate(pieces)}


SP, WHOLE, PIECE_ID = sentencepiece_from_gguf(path)


def spm_ids(text):
    """BOS, then: leftmost-longest control/user-defined pieces taken whole, SentencePiece
    BPE on the text between them."""
    out, i, start = [2], 0, 0
    while i < len(text):
        hit = next((p for p in WHOLE if text.startswith(p, i)), None)
        if hit is None:
            i += 1
            continue
        if start < i:
            out += SP.encode(text[start:i])
        out.append(PIECE_ID[hit])
        i = start = i + len(hit)
    if start < len(text):
        out += SP.encode(text[start:])
    return out


model = None if STRINGS_ONLY else AutoModelForCausalLM.from_pretrained(
    folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager")

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
    "a" + " " * 37 + "b" + "\n" * 5 + "\t\t c",
    "                                                                      end",
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


def string_entries():
    out = []
    for s in STRINGS:
        entry = {"text": s, "ids": spm_ids(s), "transformers_ids": ids_of(s)}
        if entry["ids"] != entry["transformers_ids"]:
            print(f"transformers splits {s!r} differently from SentencePiece", flush=True)
        out.append(entry)
    return out


if STRINGS_ONLY:
    with open(os.path.join(OUT, "refs.json")) as f:
        refs = json.load(f)
    refs["strings"] = string_entries()
    with open(os.path.join(OUT, "refs.json"), "w") as f:
        json.dump(refs, f, indent=1, ensure_ascii=False)
    print("rewrote the strings of", OUT)
    sys.exit(0)

model.eval()
cfg = model.config
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
    "strings": string_entries(),
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
