#!/usr/bin/env python3
"""Write the reference fixtures that lazyforge's tokenizers and models are checked against.

The reference is HF `transformers` in float32: its GGUF loader
dequantizes the file exactly, and it is an implementation independent of ours.

What it writes (everything small; the script is deterministic, so re-running it rewrites
the same files, up to float rounding of a different torch build):

  fixtures/refs/smollm2.json        for SmolLM2-135M-Instruct Q4_1 GGUF:
      "strings"  token ids of >= 10 strings (unicode, emoji, runs of spaces, newlines,
                 digits, code with tabs, " ½", a chat-templated conversation); each entry
                 also has "transformers_gguf_ids", what transformers' own GGUF tokenizer
                 conversion gives (see the trap below), and "has_digits" (any Unicode
                 number, category N*, which is what the smollm split isolates).
      "chat"     messages, the chat template rendered by transformers
                 (apply_chat_template, add_generation_prompt=True) and its ids.
      "logits"   last-position logits of 3 prompts: the prompt ids, the row index in
                 smollm2_logits.npy, and the top-10 ids and logits.
      "greedy"   greedy continuations (16 new tokens) of 3 prompts: prompt ids, new ids,
                 decoded text, the top-1/top-2 logit gap at each step, and the index of
                 the first EOS among the new ids (null if none): the reference decodes
                 all 16 tokens even past EOS.
  fixtures/refs/smollm2_logits.npy  float32 [3, vocab]: those last-position logits.

  fixtures/refs/spm-tiny.gguf       a SentencePiece BPE tokenizer (vocab 600, byte fallback)
                                    trained by this script on seeded synthetic text, written
                                    as a GGUF with only `tokenizer.ggml.*` metadata (model
                                    "llama", scores, token types), as llama.cpp's converter
                                    writes a SentencePiece vocabulary.
  fixtures/refs/spm_tiny.json       SentencePiece's own ids (and pieces) for 8 strings:
                                    the reference for lazyforge's `llama` tokenizer path.

  fixtures/tiny-mistral/            a random Mistral (hidden 64, 2 layers, 4 heads, 2 KV
                                    heads, vocab 256, sliding_window 4, untied lm_head):
      config.json, model.safetensors   as transformers saves them (float32)
      refs.json    the 12 input ids, greedy continuation (8 new tokens) with its top-1/top-2
                   logit gaps, tolerances
      logits.npy   float32 [12, 256]: logits at every position of the input ids
  fixtures/tiny-llama-sharded/      a random Llama (same sizes, tied embeddings) saved as
                                    sharded safetensors (>= 2 shards plus
                                    model.safetensors.index.json), with refs.json and
                                    logits.npy as above.

The trap: transformers' GGUF tokenizer conversion ignores `tokenizer.ggml.pre`.
SmolLM2's pre-tokenizer is `smollm`: every digit is split off on its own *before* the
GPT-2 byte-level regex, exactly what the model's original tokenizer.json does with
`Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False,
use_regex=True)]`. transformers' converted tokenizer has only the ByteLevel part, so for
"b  22" it splits "b", " ", " 22" where the original splits "b", "  ", "2", "2": different
ids. The reference ids here therefore come from the converted tokenizer with its
pre-tokenizer replaced by the original one. As a cross-check, for every string without
digits both tokenizers must agree (they differ only in how digits are split), and the
script fails if they do not.

The sliding window: query i attends keys j with i-W < j <= i. The script
checks that transformers' eager Mistral attention applies it: the logits with
sliding_window=4 must equal those without a window at positions 0..3 and differ from
position 4 on (where key 0 drops out).

How to run (the model file is the one the Rust tests use):

    python3 -m venv ~/.cache/lazyforge/refs-venv     # outside the repository
    ~/.cache/lazyforge/refs-venv/bin/pip install \
        transformers torch gguf numpy sentencepiece safetensors accelerate
    ~/.cache/lazyforge/refs-venv/bin/python tools/make_refs.py [--model PATH] [--out fixtures]

PATH defaults to $LAZYFORGE_TEST_MODEL, else ~/.cache/lazyforge/SmolLM2-135M-Instruct.Q4_1.gguf
(`bash tools/fetch_test_model.sh` gets it). `--skip-smollm2` writes only the tiny models.
Written with transformers 5.24 and torch 2.15 (CPU); `accelerate` is needed by transformers'
GGUF loader. Takes about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import unicodedata
from pathlib import Path

import numpy as np
import torch

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Strings whose ids are pinned. Each is chosen for a tokenizer path that can go wrong.
STRINGS = [
    "Hello, world!",
    "The capital of France is",
    "héllo wörld, naïve café, Straße, Ελληνικά, русский",
    "日本語のテキストと中文",
    "emoji 🦀🚀 and a family 👩‍👩‍👧 ✨",
    "   leading, and   runs of    spaces   ",
    "line one\nline two\n\n\nend\r\nwindows line",
    "b  22",
    "12345",
    "def f(x):\n\tif x > 0:\n\t\treturn 3.14 * x\n\treturn -1\n",
    " ½",
    "It's 2024-06-01; we'll pay $1,234.56 (15%) by 10:30am.",
    "<|im_start|>user\nspecial tokens in text<|im_end|>",
]

CHAT_MESSAGES = [
    {"role": "user", "content": "What is 2 + 2? Answer in one word."},
]

LOGIT_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, in a land far away, there lived",
]

# Chosen so that every greedy step wins by a clear logit gap (>= 0.1): "The quick brown
# fox" was dropped because one step won by 0.017, which rounding can flip.
GREEDY_PROMPTS = [
    "The capital of France is",
    "1, 2, 3, 4,",
    "Q: What is the largest ocean on Earth?\nA:",
]
MIN_CLEAR_MARGIN = 0.1
GREEDY_NEW_TOKENS = 16

# The tiny random models.
TINY_INPUT_IDS = [1, 17, 200, 42, 42, 99, 3, 128, 255, 64, 7, 31]
TINY_NEW_TOKENS = 8
TINY_SEED = 1234


def default_model_path() -> Path:
    env = os.environ.get("LAZYFORGE_TEST_MODEL")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "lazyforge" / SMOLLM2_FILE


def original_smollm2_pre_tokenizer():
    """The pre-tokenizer of SmolLM2's original tokenizer.json (what `smollm` stands for)."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def top10(row: np.ndarray) -> tuple[list[int], list[float]]:
    order = np.argsort(-row, kind="stable")[:10]
    return [int(i) for i in order], [float(row[i]) for i in order]


@torch.no_grad()
def greedy(model, ids: list[int], new_tokens: int) -> tuple[list[int], list[float]]:
    """Greedy decoding by full recomputation (no KV cache), so the reference is the
    definition itself and does not depend on transformers' cache code. Also returns, per
    step, the gap between the best and second-best logit: a small gap is a choice that
    rounding could flip, worth knowing when a comparison fails."""
    seq, margins = list(ids), []
    for _ in range(new_tokens):
        logits = model(torch.tensor([seq])).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        seq.append(int(torch.argmax(logits)))
    return seq[len(ids):], margins


def smollm2(model_path: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not model_path.is_file():
        sys.exit(
            f"model not found at {model_path}: run `bash tools/fetch_test_model.sh` or pass --model"
        )
    directory, name = str(model_path.parent), model_path.name
    converted = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    fixed = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    fixed.backend_tokenizer.pre_tokenizer = original_smollm2_pre_tokenizer()

    def ids_of(tok, text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False)

    chat_text = fixed.apply_chat_template(CHAT_MESSAGES, tokenize=False, add_generation_prompt=True)
    strings = []
    for text in STRINGS + [chat_text]:
        ours, theirs = ids_of(fixed, text), ids_of(converted, text)
        # Digits(individual_digits) splits every Unicode number (category N*: "2", "½").
        has_digits = any(unicodedata.category(c).startswith("N") for c in text)
        if not has_digits and ours != theirs:
            sys.exit(f"cross-check failed: {text!r} has no digits but the tokenizers disagree")
        if fixed.decode(ours) != text:
            sys.exit(f"reference tokenizer does not round-trip {text!r}")
        strings.append(
            {"text": text, "ids": ours, "transformers_gguf_ids": theirs, "has_digits": has_digits}
        )
    print(f"smollm2: {len(strings)} strings; "
          f"{sum(s['ids'] != s['transformers_gguf_ids'] for s in strings)} differ from "
          "transformers' GGUF conversion (all contain digits)")

    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, dtype=torch.float32
    )
    model.eval()

    rows, logit_refs = [], []
    with torch.no_grad():
        for i, prompt in enumerate(LOGIT_PROMPTS):
            ids = ids_of(fixed, prompt)
            row = model(torch.tensor([ids])).logits[0, -1].float().numpy()
            rows.append(row)
            ids10, logits10 = top10(row)
            logit_refs.append(
                {"prompt": prompt, "ids": ids, "row": i, "top10_ids": ids10, "top10_logits": logits10}
            )
    np.save(out / "smollm2_logits.npy", np.stack(rows).astype("<f4"))

    greedy_refs = []
    for prompt in GREEDY_PROMPTS:
        ids = ids_of(fixed, prompt)
        new, margins = greedy(model, ids, GREEDY_NEW_TOKENS)
        greedy_refs.append(
            {
                "prompt": prompt,
                "prompt_ids": ids,
                "generated_ids": new,
                "text": fixed.decode(new),
                "top1_top2_margins": margins,
                # The reference runs past EOS; a generator that stops at EOS compares the
                # ids up to and including this index.
                "first_eos_index": next(
                    (i for i, t in enumerate(new) if t == fixed.eos_token_id), None
                ),
            }
        )
        print(f"smollm2 greedy: {prompt!r} -> {fixed.decode(new)!r} (min gap {min(margins):.3f})")
        if min(margins) < MIN_CLEAR_MARGIN:
            print(f"warning: a greedy step of {prompt!r} wins by only {min(margins):.3f}")

    import transformers

    write_json(
        out / "smollm2.json",
        {
            "model_file": SMOLLM2_FILE,
            "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32",
            "note": "ids come from transformers' GGUF tokenizer with its pre-tokenizer replaced "
            "by SmolLM2's original one (Digits(individual) + ByteLevel); see tools/make_refs.py",
            "strings": strings,
            "chat": {
                "messages": CHAT_MESSAGES,
                "add_generation_prompt": True,
                "rendered": chat_text,
                "ids": ids_of(fixed, chat_text),
            },
            "logits_file": "smollm2_logits.npy",
            "logits": logit_refs,
            "greedy": greedy_refs,
        },
    )


def tiny_config(kind: str, sliding_window):
    from transformers import LlamaConfig, MistralConfig

    common = dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        # Large enough that the logits spread out and greedy choices are clear-cut.
        initializer_range=0.3,
        bos_token_id=1,
        eos_token_id=2,
    )
    if kind == "mistral":
        return MistralConfig(
            **common, rope_theta=10000.0, sliding_window=sliding_window, tie_word_embeddings=False
        )
    return LlamaConfig(**common, rope_theta=500000.0, tie_word_embeddings=True)


def build_tiny(kind: str, sliding_window=None):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(TINY_SEED)
    config = tiny_config(kind, sliding_window)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    return model


@torch.no_grad()
def all_logits(model, ids: list[int]) -> np.ndarray:
    return model(torch.tensor([ids])).logits[0].float().numpy()


def write_tiny(model, out: Path, extra: dict, **save_kwargs) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True, **save_kwargs)
    (out / "generation_config.json").unlink(missing_ok=True)
    for f in out.iterdir():
        f.chmod(0o644)
    logits = all_logits(model, TINY_INPUT_IDS)
    np.save(out / "logits.npy", logits.astype("<f4"))
    new, margins = greedy(model, TINY_INPUT_IDS, TINY_NEW_TOKENS)
    import transformers

    write_json(
        out / "refs.json",
        {
            "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, "
            "float32, attn_implementation=eager",
            "input_ids": TINY_INPUT_IDS,
            "logits_file": "logits.npy",
            "logits_shape": list(logits.shape),
            "greedy_new_tokens": TINY_NEW_TOKENS,
            "greedy_generated_ids": new,
            "greedy_top1_top2_margins": margins,
            "tolerance": {"relative_l2_per_position": 1e-4},
            **extra,
        },
    )
    size = sum(f.stat().st_size for f in out.iterdir())
    for f in out.glob("*.safetensors"):
        if f.stat().st_size >= 1 << 20:
            sys.exit(f"{f} is {f.stat().st_size} bytes; keep tiny checkpoints under 1 MB")
    print(f"{out}: {len(list(out.iterdir()))} files, {size} bytes; greedy -> {new}")


def tiny_mistral(out: Path) -> None:
    window = 4
    model = build_tiny("mistral", sliding_window=window)
    unwindowed = build_tiny("mistral", sliding_window=None)
    unwindowed.load_state_dict(model.state_dict())
    with_w = all_logits(model, TINY_INPUT_IDS)
    without_w = all_logits(unwindowed, TINY_INPUT_IDS)
    # Positions 0..W-1 see at most W keys, so the window changes nothing there; from
    # position W on, key i-W drops out and the logits must change.
    if not np.allclose(with_w[:window], without_w[:window], rtol=1e-5, atol=1e-5):
        sys.exit("sliding window changed logits at positions < W: semantics differ from i-W < j <= i")
    for i in range(window, len(TINY_INPUT_IDS)):
        if np.allclose(with_w[i], without_w[i], rtol=1e-4, atol=1e-4):
            sys.exit(f"sliding window did not change position {i}: transformers ignored it")
    print(f"tiny-mistral: sliding_window={window} verified (equal at < {window}, differs from {window} on)")
    write_tiny(
        model,
        out,
        {"sliding_window": window, "note": "sliding window W=4 < 12 positions: query i attends "
         "keys j with i-W < j <= i; checked against the same weights without a window"},
    )


def to_v4_config_layout(config_path: Path) -> None:
    """Rewrites a transformers 5.x config.json in the 4.x layout most published checkpoints
    use (top-level `rope_theta`, `torch_dtype`), so the fixtures exercise both readers."""
    config = json.loads(config_path.read_text())
    rope = config.pop("rope_parameters", None) or {}
    if "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    if rope.get("rope_type", "default") != "default":
        config["rope_scaling"] = rope
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    write_json(config_path, config)


def tiny_llama_sharded(out: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = build_tiny("llama")
    write_tiny(
        model,
        out,
        {"note": "tied embeddings (no lm_head.weight); saved in shards; config.json in the "
         "transformers 4.x layout (top-level rope_theta, torch_dtype)"},
        max_shard_size="100KB",
    )
    to_v4_config_layout(out / "config.json")
    # The rewritten config must load to the same model.
    reloaded = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager", dtype=torch.float32)
    reloaded.eval()
    if not np.array_equal(all_logits(reloaded, TINY_INPUT_IDS), np.load(out / "logits.npy")):
        sys.exit("tiny-llama: the 4.x-layout config.json does not reload to the same logits")
    shards = sorted(out.glob("model-*.safetensors"))
    if len(shards) < 2 or not (out / "model.safetensors.index.json").is_file():
        sys.exit(f"expected >= 2 shards and an index in {out}, got {[s.name for s in shards]}")


# A tiny SentencePiece model, trained here, for the `llama` (SentencePiece BPE) path.
SPM_STRINGS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "   leading spaces and   runs   of spaces  ",
    "tabs\tand\nnewlines\n\nhere",
    "naïve café, Straße 🦀 日本",
    "12345 and 3.14159",
    " ½ of 10",
    "unseen words: zyxqv, Ωmega",
]
SPM_VOCAB = 600


def spm_corpus() -> list[str]:
    """Deterministic training text: sentences from small word lists with a seeded RNG."""
    import random

    rng = random.Random(SEED_SPM)
    words = (
        "the of and to in is was he for it with as his on be at by had are but from or have an "
        "they which one you were all we her she there would their will when who him been has "
        "more if no out do so can what up said about other into than its time only could new "
        "them man some these then two first may any like now my such make over our even most "
        "me state after also made many did must before back see through way where get much go "
        "well your know should down work year because come people just say each those take day "
        "quick brown fox jumps lazy dog hello world spaces leading runs tabs newlines here cafe "
        "naive words unseen"
    ).split()
    lines = []
    for _ in range(3000):
        n = rng.randint(3, 14)
        sent = " ".join(rng.choice(words) for _ in range(n))
        if rng.random() < 0.3:
            sent += " " + str(rng.randint(0, 99999))
        sent = sent[0].upper() + sent[1:] + rng.choice([".", ",", "!", "?", ";"])
        lines.append(sent)
    return lines


SEED_SPM = 20240601


def spm_tiny(out: Path) -> None:
    """Trains a SentencePiece BPE model the way Llama's was set up (identity normalization,
    whitespace kept, digits split, byte fallback), writes it as a GGUF holding only the
    tokenizer (as llama.cpp's converter writes a SentencePiece vocabulary), and records
    SentencePiece's own ids as the reference."""
    import tempfile

    import gguf
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(spm_corpus()) + "\n", encoding="utf-8")
        prefix = str(Path(tmp) / "spm")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=prefix,
            model_type="bpe",
            vocab_size=SPM_VOCAB,
            character_coverage=1.0,
            byte_fallback=True,
            split_digits=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            num_threads=1,
            minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")

    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    path = out / "spm-tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(sp.eos_id())
    writer.add_unk_token_id(sp.unk_id())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    strings = []
    for text in SPM_STRINGS:
        ids = sp.encode(text)
        if sp.decode(ids) != text:
            sys.exit(f"SentencePiece does not round-trip {text!r}")
        strings.append({"text": text, "ids": ids, "pieces": [sp.id_to_piece(i) for i in ids]})
    write_json(
        out / "spm_tiny.json",
        {
            "gguf_file": path.name,
            "reference": f"sentencepiece {spm.__version__}: ids of SentencePieceProcessor.encode "
            "(no BOS; the GGUF sets add_bos_token, so encode with specials prepends BOS)",
            "bos_id": sp.bos_id(),
            "eos_id": sp.eos_id(),
            "vocab_size": sp.get_piece_size(),
            "strings": strings,
        },
    )
    print(f"spm-tiny: vocab {sp.get_piece_size()}, {path.stat().st_size} bytes, {len(strings)} strings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures")
    parser.add_argument("--skip-smollm2", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    refs = args.out / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    tiny_mistral(args.out / "tiny-mistral")
    tiny_llama_sharded(args.out / "tiny-llama-sharded")
    spm_tiny(refs)
    if not args.skip_smollm2:
        smollm2(args.model, refs)


if __name__ == "__main__":
    main()
