#!/usr/bin/env python3
"""Write the fixtures that pin lazyforge's dequantization to the reference, bit for bit.

Usage: python3 tools/make_dequant_fixtures.py fixtures/dequant

For every dtype lazyforge reads, this writes two files into the output folder:

  <TYPE>.bin  the encoded input: whole blocks in ggml's layout, little-endian
  <TYPE>.f32  the expected output: one little-endian float32 per encoded value

Types and where the expected values come from:

  Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
      a few blocks of random bytes (fixed seed) whose f16 scale/minimum fields are
      overwritten with finite random f16 values (normal and subnormal, either sign, so no
      NaN or inf reaches the arithmetic); expected values from the `gguf` package's numpy
      dequantizer, `gguf.quants.dequantize`.
  Q8_K
      gguf-py has no Q8_K dequantizer, so the expected values come from an independent
      numpy implementation in this script, written from ggml's block_q8_K layout
      (f32 d, int8 qs[256], int16 bsums[16]; value = d * q). d is a finite random f32.
  F32 F16 BF16
      exact conversions, so special values are included: +-0, subnormals, +-inf, NaN and
      the extremes, plus random bit patterns. F32 is the identity, F16 uses numpy's
      float16 -> float32 cast, BF16 shifts the 16 bits into the top of a float32
      (both are checked against gguf's own conversion).

Everything is deterministic (seeded), so re-running the script reproduces the files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, quants

SEED = 0x1A2F_0F6E

# (values per block, bytes per block, byte offsets of the f16 scale/minimum fields)
QUANT_LAYOUTS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "Q4_0": (32, 18, (0,)),  # d, qs[16]
    "Q4_1": (32, 20, (0, 2)),  # d, m, qs[16]
    "Q5_0": (32, 22, (0,)),  # d, qh[4], qs[16]
    "Q5_1": (32, 24, (0, 2)),  # d, m, qh[4], qs[16]
    "Q8_0": (32, 34, (0,)),  # d, qs[32]
    "Q2_K": (256, 84, (80, 82)),  # scales[16], qs[64], d, dmin
    "Q3_K": (256, 110, (108,)),  # hmask[32], qs[64], scales[12], d
    "Q4_K": (256, 144, (0, 2)),  # d, dmin, scales[12], qs[128]
    "Q5_K": (256, 176, (0, 2)),  # d, dmin, scales[12], qh[32], qs[128]
    "Q6_K": (256, 210, (208,)),  # ql[128], qh[64], scales[16], d
}

# Enough blocks to exercise every sub-block pattern twice over, small enough to commit.
BLOCKS_SMALL = 8  # 32-value formats
BLOCKS_K = 4  # 256-value formats


def random_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite f16 values, log-uniform in magnitude from f16 subnormals up to 4, either sign."""
    mag = np.exp2(rng.uniform(-20.0, 2.0, size=n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    vals = (sign * mag).astype(np.float16)
    assert np.all(np.isfinite(vals))
    return vals


def quant_case(rng: np.random.Generator, name: str) -> tuple[bytes, np.ndarray]:
    """Random blocks of `name` with sane f16 scales, and gguf's dequantization of them."""
    _, type_size, scale_offsets = QUANT_LAYOUTS[name]
    n_blocks = BLOCKS_SMALL if type_size < 64 else BLOCKS_K
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in scale_offsets:
        blocks[:, off : off + 2] = random_scales(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    data = blocks.reshape(-1)
    expected = quants.dequantize(data, GGMLQuantizationType[name]).astype(np.float32).reshape(-1)
    return data.tobytes(), expected


def dequantize_q8_k(data: np.ndarray) -> np.ndarray:
    """ggml's dequantize_row_q8_K in numpy: block_q8_K is f32 d, int8 qs[256], int16 bsums[16]."""
    blocks = data.reshape(-1, 292)
    d = blocks[:, 0:4].copy().view("<f4").astype(np.float32)  # (n, 1)
    qs = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)  # (n, 256)
    # bsums (bytes 260..292) are sums of qs used by dot kernels; they do not affect values.
    return (d * qs).astype(np.float32).reshape(-1)


def q8_k_case(rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    blocks = rng.integers(0, 256, size=(BLOCKS_K, 292), dtype=np.uint8)
    mag = np.exp2(rng.uniform(-20.0, 2.0, size=BLOCKS_K))
    d = (np.where(rng.random(BLOCKS_K) < 0.5, -1.0, 1.0) * mag).astype("<f4")
    blocks[:, 0:4] = d.view(np.uint8).reshape(BLOCKS_K, 4)
    data = blocks.reshape(-1)
    return data.tobytes(), dequantize_q8_k(data)


def f16_case(rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    special = np.array(
        [
            0x0000, 0x8000,  # +0, -0
            0x0001, 0x8001, 0x03FF, 0x0200,  # subnormals
            0x0400, 0x7BFF, 0xFBFF,  # smallest normal, +-max
            0x3C00, 0xBC00, 0x3555,  # 1, -1, ~1/3
            0x7C00, 0xFC00,  # +-inf
            0x7E00, 0xFE01, 0x7C01,  # NaNs (quiet, signed with payload, signalling)
        ],
        dtype=np.uint16,
    )
    bits = np.concatenate([special, rng.integers(0, 1 << 16, size=111, dtype=np.uint16)])
    bits = bits.astype("<u2")
    expected = bits.view(np.float16).astype(np.float32)
    reference = quants.dequantize(bits.view(np.uint8), GGMLQuantizationType.F16).reshape(-1)
    assert same_values(expected, reference)
    return bits.tobytes(), expected


def bf16_case(rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    special = np.array(
        [
            0x0000, 0x8000,  # +0, -0
            0x0001, 0x8001, 0x007F,  # subnormals
            0x0080, 0x7F7F, 0xFF7F,  # smallest normal, +-max
            0x3F80, 0xBF80, 0x3EAB,  # 1, -1, ~1/3
            0x7F80, 0xFF80,  # +-inf
            0x7FC0, 0xFFC1, 0x7F81,  # NaNs (quiet, signed with payload, signalling)
        ],
        dtype=np.uint16,
    )
    bits = np.concatenate([special, rng.integers(0, 1 << 16, size=112, dtype=np.uint16)])
    bits = bits.astype("<u2")
    expected = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    reference = quants.dequantize(bits.view(np.uint8), GGMLQuantizationType.BF16).reshape(-1)
    assert same_values(expected, reference)
    return bits.tobytes(), expected


def f32_case(rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    special = np.array(
        [0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000],
        dtype=np.uint32,
    )
    bits = np.concatenate([special, rng.integers(0, 1 << 32, size=56, dtype=np.uint32)]).astype("<u4")
    return bits.tobytes(), bits.view(np.float32).copy()


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equal, except that any NaN equals any NaN."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | (a.view(np.uint32) == b.view(np.uint32))))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    cases: dict[str, tuple[bytes, np.ndarray]] = {
        "F32": f32_case(rng),
        "F16": f16_case(rng),
        "BF16": bf16_case(rng),
    }
    for name in QUANT_LAYOUTS:
        cases[name] = quant_case(rng, name)
    cases["Q8_K"] = q8_k_case(rng)

    total = 0
    for name, (data, expected) in cases.items():
        expected = np.ascontiguousarray(expected, dtype="<f4")
        (out / f"{name}.bin").write_bytes(data)
        (out / f"{name}.f32").write_bytes(expected.tobytes())
        total += len(data) + expected.nbytes
        print(f"{name:5} {len(data):6} bytes -> {expected.size:5} values")
    print(f"total {total} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
