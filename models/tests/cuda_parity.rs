//! A random-weight Llama (written with lazyforge's GGUF writer) on the GPU against the CPU:
//! logits within 1e-4 relative L2 at every prompt position and for every greedy step, and the
//! same greedy ids (feature `cuda`). Prints "skipped: no CUDA device (...)" and passes where
//! there is none.
#![cfg(feature = "cuda")]

use lazyforge::{DType, Device};
use lazyforge_models::synth::SynthLlama;
use lazyforge_models::Llama;

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32
}

#[test]
fn a_random_llama_on_cuda_gives_the_cpu_logits_and_greedy_ids() {
    if let Err(e) = Device::Cuda(0).ensure_available() {
        eprintln!("skipped: no CUDA device ({e})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for dtype in [
        DType::Q4_0,
        DType::Q4_1,
        DType::Q8_0,
        DType::Q4_K,
        DType::Q6_K,
        DType::F16,
    ] {
        let path = dir.path().join(format!("tiny-{dtype}.gguf"));
        SynthLlama::tiny(dtype).write(&path).unwrap();
        let cpu = Llama::open(&path, Device::Cpu).unwrap();
        let gpu = Llama::open(&path, Device::Cuda(0)).unwrap();
        let prompt = [1u32, 17, 99, 4, 250, 33, 7];
        let (mut cc, mut gc) = (cpu.new_cache().unwrap(), gpu.new_cache().unwrap());
        let a = cpu
            .prefill_all_logits(&prompt, &mut cc)
            .unwrap()
            .to_f32_vec()
            .unwrap();
        let b = gpu
            .prefill_all_logits(&prompt, &mut gc)
            .unwrap()
            .to_f32_vec()
            .unwrap();
        let e = rel_l2(&b, &a);
        assert!(e <= 1e-4, "{dtype}: prefill logits relative L2 {e:e}");
        let vocab = a.len() / prompt.len();
        let (mut next_c, mut next_g) =
            (argmax(&a[a.len() - vocab..]), argmax(&b[b.len() - vocab..]));
        for step in 0..8 {
            assert_eq!(next_c, next_g, "{dtype}: greedy id at step {step}");
            let a = cpu
                .forward_decode(&[next_c], &mut cc)
                .unwrap()
                .to_f32_vec()
                .unwrap();
            let b = gpu
                .forward_decode(&[next_g], &mut gc)
                .unwrap()
                .to_f32_vec()
                .unwrap();
            let e = rel_l2(&b, &a);
            assert!(
                e <= 1e-4,
                "{dtype}: decode step {step} logits relative L2 {e:e}"
            );
            (next_c, next_g) = (argmax(&a), argmax(&b));
        }
        eprintln!("{dtype}: prefill and 8 greedy steps match");
    }
}
