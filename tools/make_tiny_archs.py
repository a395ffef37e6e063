#!/usr/bin/env python3
"""Write tiny random Qwen2, Qwen3 and Phi-3 checkpoints and their references, which
lazyforge's `qwen2`, `qwen3` and `phi3` models are checked against
(models/tests/arch_parity.rs).

The reference is HF `transformers` in float32 with attn_implementation="eager"; the
conventions (input ids, greedy decoding by full recomputation, refs.json, logits.npy) are
those of tools/make_refs.py, whose helpers this script imports.

What it writes (each directory under 500 KB; the script is seeded, so re-running it
rewrites the same files, up to float rounding of a different torch build):

  fixtures/tiny-qwen2/   a random Qwen2 (hidden 64, 2 layers, 4 heads, 2 KV heads, vocab
                         256, intermediate 128, rope_theta 1e6) with tied embeddings (no
                         lm_head.weight, like Qwen2.5-0.5B) and random q/k/v biases.
                         config.json is in the transformers 4.x layout published Qwen2.5
                         checkpoints use: `sliding_window: 4` with `use_sliding_window:
                         false` and `max_window_layers: 1`, so a reader that applies the
                         window without the switch gets different numbers.
      logits_sliding.npy  float32 [12, 256]: the same weights with use_sliding_window=true
                          (layer 0 full attention, layer 1 a window of 4).
  fixtures/tiny-qwen3/   a random Qwen3 (same sizes but head_dim 32 != 64 / 4 heads,
                         intermediate 96, untied lm_head), config.json in the 5.x layout
                         (`rope_parameters`).
  fixtures/tiny-phi3/    a random Phi-3 (same sizes as Qwen2, fused qkv_proj and
                         gate_up_proj, untied lm_head, sliding_window 5: Phi-3 applies its
                         window whenever it is set).
      logits_partial_rotary.npy  float32 [12, 256]: the same weights with
                                 partial_rotary_factor 0.5 (RoPE on 8 of 16 dimensions).

  Each directory also has, as tools/make_refs.py writes them:
      config.json, model.safetensors   as transformers saves them (float32)
      refs.json    the 12 input ids, greedy continuation (8 new tokens) with its top-1/top-2
                   logit gaps, tolerances, the transformers version, and the variants above
      logits.npy   float32 [12, 256]: logits at every position of the input ids

The trap this script avoids: transformers initializes every bias to zero and every RMSNorm
weight to one, so a fresh random model cannot tell a forgotten bias or norm weight from a
correct one. Every 1-D parameter (biases, norm weights, Qwen3's per-head q/k norms) is
therefore replaced by seeded random values before anything is saved.

Each variant is checked to matter: the sliding window must leave positions < W unchanged
and change every position from W on; half-rotary RoPE must change every position but 0.

How to run (see tools/make_refs.py for the virtual environment):

    ~/.cache/lazyforge/refs-venv/bin/python tools/make_tiny_archs.py [--out fixtures]

Written with transformers 5.24 and torch 2.15 (CPU); takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_refs  # noqa: E402  (TINY_INPUT_IDS, greedy, write_tiny, ... shared with it)

from make_refs import TINY_INPUT_IDS, all_logits, to_v4_config_layout, write_json, write_tiny  # noqa: E402

SEED = make_refs.TINY_SEED
MAX_DIR_BYTES = 500_000

COMMON = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    # Large enough that the logits spread out and greedy choices are clear-cut.
    initializer_range=0.3,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


def build(config, state=None):
    """A float32 eager model of `config`: seeded random weights with random 1-D
    parameters (see the trap above), or `state`'s weights."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    if state is not None:
        model.load_state_dict(state)
        return model
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                noise = torch.randn(p.shape, generator=g)
                p.copy_(0.3 * noise if name.endswith(".bias") else 1.0 + 0.2 * noise)
    return model


def check_window(name: str, with_w: np.ndarray, without_w: np.ndarray, window: int) -> None:
    """Positions < W see at most W keys, so a window changes nothing there; from W on it must."""
    if not np.allclose(with_w[:window], without_w[:window], rtol=1e-5, atol=1e-5):
        sys.exit(f"{name}: the window changed positions < {window}: semantics differ from i-W < j <= i")
    for i in range(window, len(TINY_INPUT_IDS)):
        # Only by 1.5e-4 at Qwen2's position 4, where the one sliding layer drops key 0.
        if np.abs(with_w[i] - without_w[i]).max() < 1e-5:
            sys.exit(f"{name}: the window did not change position {i}: transformers ignored it")


def finish(out: Path) -> None:
    size = sum(f.stat().st_size for f in out.iterdir())
    if size > MAX_DIR_BYTES:
        sys.exit(f"{out} holds {size} bytes; keep tiny fixtures under {MAX_DIR_BYTES}")


def reloads_to(out: Path, logits: np.ndarray) -> None:
    """The config.json as written must load to the same model."""
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager", dtype=torch.float32)
    reloaded.eval()
    if not np.array_equal(all_logits(reloaded, TINY_INPUT_IDS), logits):
        sys.exit(f"{out}: config.json does not reload to the same logits")


def tiny_qwen2(out: Path) -> None:
    from transformers import Qwen2Config

    window = 4
    kw = dict(COMMON, rms_norm_eps=1e-6, rope_theta=1e6, tie_word_embeddings=True,
              sliding_window=window, max_window_layers=1)
    model = build(Qwen2Config(**kw, use_sliding_window=False))
    sliding = build(Qwen2Config(**kw, use_sliding_window=True), model.state_dict())
    if sliding.config.layer_types != ["full_attention", "sliding_attention"]:
        sys.exit(f"qwen2: unexpected layer types {sliding.config.layer_types}")
    plain, windowed = all_logits(model, TINY_INPUT_IDS), all_logits(sliding, TINY_INPUT_IDS)
    check_window("qwen2", windowed, plain, window)
    write_tiny(model, out, {
        "tie_word_embeddings": True,
        "variants": {"use_sliding_window": {
            "config": {"use_sliding_window": True},
            "logits_file": "logits_sliding.npy",
            "layer_windows": [None, window],
        }},
        "note": "tied embeddings, random q/k/v biases; config.json in the 4.x layout with "
        "sliding_window 4 but use_sliding_window false, which transformers ignores (layer i "
        "slides only when use_sliding_window and i >= max_window_layers)",
    })
    np.save(out / "logits_sliding.npy", windowed.astype("<f4"))
    if (out / "model.safetensors").exists():
        from safetensors import safe_open

        with safe_open(out / "model.safetensors", "pt") as f:
            if "lm_head.weight" in f.keys():
                sys.exit("qwen2: tied embeddings were saved with an lm_head.weight")
    config_path = out / "config.json"
    to_v4_config_layout(config_path)
    config = json.loads(config_path.read_text())
    config.pop("layer_types", None)
    config.update(sliding_window=window, use_sliding_window=False, max_window_layers=1)
    write_json(config_path, config)
    reloads_to(out, plain)
    finish(out)


def tiny_qwen3(out: Path) -> None:
    from transformers import Qwen3Config

    model = build(Qwen3Config(**dict(COMMON, intermediate_size=96), head_dim=32, rms_norm_eps=1e-6,
                              rope_theta=1e6, tie_word_embeddings=False))
    write_tiny(model, out, {
        "head_dim": 32,
        "note": "head_dim 32 != hidden 64 / 4 heads; random per-head q/k RMSNorm weights; "
        "untied lm_head; config.json in the 5.x layout (rope_parameters)",
    })
    reloads_to(out, np.load(out / "logits.npy"))
    finish(out)


def tiny_phi3(out: Path) -> None:
    from transformers import Phi3Config

    window = 5
    kw = dict(COMMON, rms_norm_eps=1e-5, rope_theta=10000.0, original_max_position_embeddings=128,
              tie_word_embeddings=False)
    model = build(Phi3Config(**kw, sliding_window=window))
    unwindowed = build(Phi3Config(**kw, sliding_window=None), model.state_dict())
    plain = all_logits(model, TINY_INPUT_IDS)
    check_window("phi3", plain, all_logits(unwindowed, TINY_INPUT_IDS), window)
    partial = build(Phi3Config(**kw, sliding_window=window, partial_rotary_factor=0.5), model.state_dict())
    half = all_logits(partial, TINY_INPUT_IDS)
    if not np.allclose(half[0], plain[0], rtol=1e-5, atol=1e-5) or any(
        np.allclose(half[i], plain[i], rtol=1e-4, atol=1e-4) for i in range(1, len(TINY_INPUT_IDS))
    ):
        sys.exit("phi3: partial_rotary_factor 0.5 should change every position but 0")
    write_tiny(model, out, {
        "sliding_window": window,
        "variants": {"partial_rotary_factor": {
            # Merged into config.json's rope_parameters (where 5.x keeps the factor).
            "config": {"rope_parameters": {"partial_rotary_factor": 0.5}},
            "logits_file": "logits_partial_rotary.npy",
        }},
        "note": "fused qkv_proj and gate_up_proj (gate first); sliding window W=5 < 12 "
        "positions, applied (query i attends keys j with i-W < j <= i); untied lm_head",
    })
    np.save(out / "logits_partial_rotary.npy", half.astype("<f4"))
    reloads_to(out, plain)
    finish(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures")
    args = parser.parse_args()
    torch.set_num_threads(2)
    tiny_qwen2(args.out / "tiny-qwen2")
    tiny_qwen3(args.out / "tiny-qwen3")
    tiny_phi3(args.out / "tiny-phi3")


if __name__ == "__main__":
    main()
