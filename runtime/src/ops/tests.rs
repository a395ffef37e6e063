//! The device-dispatching ops: bit-identical to the CPU kernels they run, device checks,
//! device tensors' host accessors, and per-sequence state that grows on demand.

use super::cpu::reference::Rng;
use super::cpu::tests::{random_tensor, working_dtypes};
use super::*;
use crate::device::{DeviceBuffer, DeviceMemory, Storage};
use crate::dtype::DType;
use std::sync::Arc;

/// Device memory that a backend of `cuda:0` would own (this build has none).
#[derive(Debug)]
struct FakeGpuMemory(usize);

impl DeviceMemory for FakeGpuMemory {
    fn device(&self) -> Device {
        Device::Cuda(0)
    }

    fn len(&self) -> usize {
        self.0
    }
}

/// An `f32` tensor of `shape` in (fake) `cuda:0` memory.
fn on_gpu(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let buffer = DeviceBuffer::new(Arc::new(FakeGpuMemory(4 * n)));
    Tensor::from_storage(shape.to_vec(), DType::F32, Storage::Device(buffer)).unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec().unwrap()
}

#[test]
fn matvec_and_matmul_equal_the_kernels_bit_for_bit_in_every_dtype() {
    let mut rng = Rng::new(31);
    let (n, m, k) = (5, 37, 256);
    for dtype in working_dtypes(k) {
        let w = random_tensor(dtype, &[m, k], &mut rng);
        let x = rng.vec(k);
        let want = cpu::matvec(&w, &x).unwrap();
        let got = matvec(&w, &Tensor::from_f32([1, k], x.clone()).unwrap()).unwrap();
        assert_eq!(got.shape(), [1, m]);
        assert_eq!(f32s(&got), want, "matvec {dtype}");
        let flat = matvec(&w, &Tensor::from_f32([k], x).unwrap()).unwrap();
        assert_eq!((flat.shape(), f32s(&flat)), (&[m][..], want));

        let xs = Tensor::from_f32([n, k], rng.vec(n * k)).unwrap();
        let got = matmul(&xs, &w).unwrap();
        assert_eq!(f32s(&got), f32s(&cpu::matmul(&xs, &w).unwrap()), "{dtype}");
    }
    let err = matvec(&Tensor::zeros([4, 8]), &Tensor::zeros([2, 8])).unwrap_err();
    assert!(err.to_string().contains("ops::matvec"), "{err}");
    assert!(err.to_string().contains("[2, 8]"), "{err}");
}

#[test]
fn norms_rope_attention_and_elementwise_ops_equal_the_kernels() {
    let mut rng = Rng::new(32);
    let (n, n_heads, n_kv, hd) = (6, 4, 2, 16);
    let d = n_heads * hd;
    let x = Tensor::from_f32([n, d], rng.vec(n * d)).unwrap();
    let w = random_tensor(DType::F16, &[d], &mut rng);
    let b = Tensor::from_f32([d], rng.vec(d)).unwrap();
    assert_eq!(
        f32s(&rms_norm(&x, &w, 1e-5).unwrap()),
        f32s(&cpu::rms_norm(&x, &w, 1e-5).unwrap())
    );
    assert_eq!(
        f32s(&layer_norm(&x, &w, Some(&b), 1e-5).unwrap()),
        f32s(&cpu::layer_norm(&x, &w, Some(&b), 1e-5).unwrap())
    );

    let positions: Vec<usize> = (3..3 + n).collect();
    let mut table = RopeTable::on_demand(Device::Cpu, hd, 10000.0).unwrap();
    table.reserve(positions[n - 1] + 1);
    for style in [RopeStyle::Interleaved, RopeStyle::SplitHalf] {
        let mut got = x.clone();
        rope(&mut got, style, n_heads, hd, &positions, &table).unwrap();
        let mut want = f32s(&x);
        match style {
            RopeStyle::Interleaved => {
                cpu::rope_interleaved(&mut want, n_heads, hd, &positions, &table).unwrap()
            }
            RopeStyle::SplitHalf => {
                cpu::rope_split_half(&mut want, n_heads, hd, &positions, &table).unwrap()
            }
        }
        assert_eq!(f32s(&got), want, "{style:?}");
    }

    let k = Tensor::from_f32([n, n_kv * hd], rng.vec(n * n_kv * hd)).unwrap();
    let v = Tensor::from_f32([n, n_kv * hd], rng.vec(n * n_kv * hd)).unwrap();
    let mut cache = KvCache::new(n_kv, hd, Some(4)).unwrap();
    kv_append(&mut cache, &k, &v, &positions).unwrap();
    let got = attention(&x, &positions, n_heads, &cache, Some(4)).unwrap();
    let mut host = KvCache::new(n_kv, hd, Some(4)).unwrap();
    host.append_host(&f32s(&k), &f32s(&v), &positions).unwrap();
    let want = cpu::attention(
        &f32s(&x),
        &positions,
        n_heads,
        &host.view().unwrap(),
        Some(4),
    );
    assert_eq!(got.shape(), x.shape());
    assert_eq!(f32s(&got), want.unwrap());

    let up = Tensor::from_f32([n, d], rng.vec(n * d)).unwrap();
    let mut g = x.clone();
    swiglu_in_place(&mut g, &up).unwrap();
    assert_eq!(f32s(&g), cpu::swiglu(&f32s(&x), &f32s(&up)).unwrap());
    let mut sum = x.clone();
    add_in_place(&mut sum, &up).unwrap();
    let mut want = f32s(&x);
    cpu::add_in_place(&mut want, &f32s(&up)).unwrap();
    assert_eq!(f32s(&sum), want);
    let mut biased = x.clone();
    add_bias_in_place(&mut biased, &b).unwrap();
    let mut want = f32s(&x);
    cpu::add_rows_in_place(&mut want, &f32s(&b)).unwrap();
    assert_eq!(f32s(&biased), want);

    for (f, kernel) in [
        (Activation::Silu, cpu::silu_in_place as fn(&mut [f32])),
        (Activation::GeluTanh, cpu::gelu_tanh_in_place),
        (Activation::GeluErf, cpu::gelu_erf_in_place),
    ] {
        let mut got = x.clone();
        match f {
            Activation::Silu => silu_in_place(&mut got),
            Activation::GeluTanh => gelu_tanh_in_place(&mut got),
            Activation::GeluErf => gelu_erf_in_place(&mut got),
        }
        .unwrap();
        let mut want = f32s(&x);
        kernel(&mut want);
        assert_eq!(f32s(&got), want, "{f:?}");
    }

    let err = add_in_place(&mut x.clone(), &Tensor::zeros([n, d + 1])).unwrap_err();
    assert!(err.to_string().contains("ops::add_in_place"), "{err}");
    let err = add_bias_in_place(&mut x.clone(), &Tensor::zeros([d - 1])).unwrap_err();
    assert!(err.to_string().contains("ops::add_bias_in_place"), "{err}");
    let err = rope(&mut x.clone(), RopeStyle::SplitHalf, 1, hd, &[0], &table).unwrap_err();
    assert!(err.to_string().contains("ops::rope"), "{err}");
}

#[test]
fn in_place_ops_on_a_mapped_or_byte_backed_f32_tensor_work_on_a_copy() {
    let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let storage = Storage::Bytes(crate::source::AlignedBytes::from_slice(&bytes));
    let mut x = Tensor::from_storage(vec![2, 2], DType::F32, storage).unwrap();
    add_in_place(&mut x, &Tensor::from_f32([2, 2], vec![1.0; 4]).unwrap()).unwrap();
    assert_eq!(f32s(&x), [2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn embedding_narrow_and_last_row() {
    let mut rng = Rng::new(33);
    let table = random_tensor(DType::Q8_0, &[9, 64], &mut rng);
    let got = embedding(&table, &[3, 0, 8]).unwrap();
    assert_eq!(
        f32s(&got),
        f32s(&cpu::embedding(&table, &[3, 0, 8]).unwrap())
    );

    let x = Tensor::from_f32([3, 4], (0..12).map(|v| v as f32).collect()).unwrap();
    let last = last_row(&x).unwrap();
    assert_eq!(
        (last.shape(), f32s(&last)),
        (&[1, 4][..], vec![8.0, 9.0, 10.0, 11.0])
    );
    let cols = x.narrow(1, 1, 2).unwrap();
    assert_eq!(cols.shape(), [3, 2]);
    assert_eq!(f32s(&cols), [1.0, 2.0, 5.0, 6.0, 9.0, 10.0]);
    assert_eq!(narrow(&x, 0, 3, 0).unwrap().shape(), [0, 4]);
    let err = narrow(&x, 1, 3, 2).unwrap_err();
    assert!(err.to_string().contains("narrow") && err.to_string().contains("[3, 4]"));
    assert!(narrow(&x, 2, 0, 1).is_err());
    assert!(last_row(&Tensor::zeros([0, 4])).is_err());
    assert!(
        narrow(&table, 0, 0, 1).is_err(),
        "narrow copies f32 activations"
    );
}

#[test]
fn a_device_tensor_tells_its_device_and_refuses_host_access_with_errors() {
    let t = on_gpu(&[2, 3]);
    assert_eq!(t.device(), Device::Cuda(0));
    assert!(!t.is_host() && !t.is_zero_copy());
    assert_eq!(t.byte_len(), 24);
    assert!(t.bytes().is_empty());
    for err in [
        t.host_bytes().unwrap_err(),
        t.as_f32().unwrap_err(),
        t.clone().as_f32_mut().unwrap_err(),
        t.row_bytes(0).unwrap_err(),
    ] {
        assert!(matches!(err, Error::Device { .. }), "{err}");
        assert!(err.to_string().contains("cuda:0"), "{err}");
    }
    // Reading it back needs its backend, which this build does not have.
    let err = t.to_f32_vec().unwrap_err();
    assert!(err.to_string().contains("no CUDA backend"), "{err}");
    assert!(t.to_host().is_err());
    assert!(Tensor::zeros([2]).to_device(Device::Hip(1)).is_err());
    assert_eq!(
        Tensor::zeros([2]).to_device(Device::Cpu).unwrap().shape(),
        [2]
    );

    // A buffer whose size does not fit the shape, or that claims to be host memory.
    let buffer = DeviceBuffer::new(Arc::new(FakeGpuMemory(20)));
    assert!(Tensor::from_storage(vec![2, 3], DType::F32, Storage::Device(buffer.clone())).is_err());
    assert!(buffer.downcast_ref::<FakeGpuMemory>().is_some());
}

#[test]
fn ops_on_tensors_of_different_devices_are_errors_naming_the_op() {
    let w = Tensor::zeros([2, 3]);
    let x = on_gpu(&[1, 3]);
    let err = matvec(&w, &x).unwrap_err();
    assert!(matches!(err, Error::DeviceMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("ops::matvec") && msg.contains("w on cpu") && msg.contains("x on cuda:0"));
    assert!(matmul(&x, &w)
        .unwrap_err()
        .to_string()
        .contains("ops::matmul"));
    assert!(rms_norm(&x, &Tensor::zeros([3]), 1e-5).is_err());
    let mut y = Tensor::zeros([1, 3]);
    let err = add_in_place(&mut y, &x).unwrap_err();
    assert!(err.to_string().contains("ops::add_in_place"), "{err}");
    let mut cache = KvCache::new(1, 3, None).unwrap();
    let err = cache.append(&x, &x, &[0]).unwrap_err();
    assert!(err.to_string().contains("KvCache::append"), "{err}");
    let err = attention(&x, &[0], 1, &cache, None).unwrap_err();
    assert!(err.to_string().contains("ops::attention"), "{err}");

    // All on one device without a backend: the device's own error.
    let err = matvec(&on_gpu(&[2, 3]), &x).unwrap_err();
    assert!(err.to_string().contains("no CUDA backend"), "{err}");
}

#[test]
fn backends_exist_for_the_cpu_only() {
    assert_eq!(backend(Device::Cpu).unwrap().device(), Device::Cpu);
    assert_eq!(Device::Cpu.backend().unwrap().device(), Device::Cpu);
    for d in [Device::Cuda(0), Device::Hip(0)] {
        let err = backend(d).unwrap_err().to_string();
        assert_eq!(err, d.ensure_available().unwrap_err().to_string());
        assert!(KvCache::new_on(d, 1, 4, None).is_err());
        assert!(RopeTable::on_demand(d, 4, 10000.0).is_err());
    }
}

#[test]
fn per_sequence_state_starts_small_and_grows_with_the_positions_used() {
    let cache = KvCache::new_on(Device::Cpu, 8, 128, None).unwrap();
    assert_eq!((cache.memory_bytes(), cache.allocated_slots()), (0, 0));
    assert_eq!(cache.device(), Device::Cpu);

    let mut table = RopeTable::on_demand(Device::Cpu, 128, 500000.0).unwrap();
    assert_eq!(table.max_positions(), 0);
    assert_eq!(table.memory_bytes(), 64 * 4, "only the inverse frequencies");
    table.reserve(1);
    assert_eq!(table.max_positions(), 16);
    table.reserve(16);
    assert_eq!(table.max_positions(), 16);
    table.reserve(17);
    assert_eq!(table.max_positions(), 32, "doubles");
    table.reserve(100);
    assert_eq!(table.max_positions(), 100);
    assert!(table.memory_bytes() <= (64 + 2 * 100 * 64) * 4 + 4096);

    // Grown, eager and on-the-fly angles are the same numbers.
    let eager = RopeTable::new(128, 500000.0, 4096).unwrap();
    let mut rng = Rng::new(34);
    let positions = [0, 15, 16, 31, 99, 100, 4000];
    let x = Tensor::from_f32([7, 2 * 128], rng.vec(7 * 2 * 128)).unwrap();
    let (mut a, mut b) = (x.clone(), x);
    rope(&mut a, RopeStyle::SplitHalf, 2, 128, &positions, &table).unwrap();
    rope(&mut b, RopeStyle::SplitHalf, 2, 128, &positions, &eager).unwrap();
    assert_eq!(f32s(&a), f32s(&b));
}
