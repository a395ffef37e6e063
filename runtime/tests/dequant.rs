//! Dequantization is bit-exact with the reference for every dtype.
//!
//! The fixtures in `fixtures/dequant/` come from `tools/make_dequant_fixtures.py`: for each
//! dtype, `<TYPE>.bin` holds encoded blocks and `<TYPE>.f32` the values gguf-py's numpy
//! dequantizer (or, for Q8_K, an independent numpy implementation) gives for them. Every
//! dtype is compared bitwise, NaN equal to NaN: no tolerance is needed, because our
//! arithmetic performs the reference's f32 operations in the reference's order.

use lazyforge::dtype::{dequantize, dequantize_block};
use lazyforge::DType;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/dequant")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Bitwise equality, except that any NaN equals any NaN (payloads may differ between
/// conversions and carry no meaning here).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_dtype_dequantizes_bit_exactly_like_the_reference() {
    for dtype in DType::ALL {
        let bytes = fixture(&format!("{}.bin", dtype.name()));
        let expected: Vec<f32> = fixture(&format!("{}.f32", dtype.name()))
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert!(!expected.is_empty(), "{dtype}: empty fixture");

        let mut out = vec![0f32; expected.len()];
        dequantize(dtype, &bytes, &mut out).unwrap();
        for (i, (&got, &want)) in out.iter().zip(&expected).enumerate() {
            assert!(
                same(got, want),
                "{dtype}: value {i} (block {}): got {got:e} ({:#010x}), reference {want:e} ({:#010x})",
                i / dtype.block_size(),
                got.to_bits(),
                want.to_bits()
            );
        }
    }
}

#[test]
fn byte_length_that_is_not_whole_blocks_is_an_error_not_a_crash() {
    for dtype in DType::ALL {
        let ts = dtype.type_size();
        let bs = dtype.block_size();
        // One byte short of two blocks, and one byte over.
        for n_bytes in [2 * ts - 1, 2 * ts + 1] {
            let bytes = vec![0u8; n_bytes];
            let mut out = vec![0f32; 2 * bs];
            assert!(
                dequantize(dtype, &bytes, &mut out).is_err(),
                "{dtype}: {n_bytes} bytes"
            );
        }
        // Whole blocks, but an output of the wrong length.
        let bytes = vec![0u8; 2 * ts];
        for n_values in [2 * bs - 1, 2 * bs + 1, 3 * bs] {
            let mut out = vec![0f32; n_values];
            assert!(
                dequantize(dtype, &bytes, &mut out).is_err(),
                "{dtype}: {n_values} values"
            );
        }
    }
}

#[test]
fn parallel_dequantize_of_a_large_tensor_matches_block_by_block() {
    // 2^18 values is above the parallel threshold, and the random bytes (with finite scales
    // patched in below) exercise every code path of every block.
    const N: usize = 1 << 18;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for dtype in DType::ALL {
        let (bs, ts) = (dtype.block_size(), dtype.type_size());
        let mut bytes: Vec<u8> = (0..N / bs * ts).map(|_| next() as u8).collect();
        if dtype.is_quantized() {
            // Keep scales finite: clear the top exponent bit of every f16/f32 scale field
            // by clearing bit 6 of the high byte of each candidate field.
            for block in bytes.chunks_exact_mut(ts) {
                let fields: &[usize] = match dtype {
                    DType::Q2_K => &[81, 83],
                    DType::Q3_K => &[109],
                    DType::Q6_K => &[209],
                    DType::Q8_K => &[3],
                    DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[1, 3],
                    _ => &[1],
                };
                for &hi in fields {
                    block[hi] &= !0x40;
                }
            }
        }
        let mut parallel = vec![0f32; N];
        dequantize(dtype, &bytes, &mut parallel).unwrap();
        let mut serial = vec![0f32; N];
        for (b, y) in bytes.chunks_exact(ts).zip(serial.chunks_exact_mut(bs)) {
            dequantize_block(dtype, b, y);
        }
        let mismatch = parallel
            .iter()
            .zip(&serial)
            .position(|(&p, &s)| !same(p, s));
        assert_eq!(mismatch, None, "{dtype}: parallel and serial paths differ");
    }
}
