//! Binding rules that the downstream crate does not reach: scopes, dtype constraints,
//! placement, unsupported dtypes, metrics.

use crate::lazy::Checkpoint;
use crate::module::{Bind, ExecutionMode, ForwardMetrics, LazyModule, Scope, Strategy, Weight};
use crate::source::gguf::GgufWriter;
use crate::{lazy_module, strategy, DType, Device, Error, Result, Tensor};
use std::time::Duration;

fn checkpoint(name: &str, tensors: &[(&str, DType, &[usize])]) -> (tempfile::TempDir, Checkpoint) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = GgufWriter::new();
    for (name, dtype, shape) in tensors {
        let n: usize = shape.iter().product();
        let bytes = vec![0u8; dtype.bytes_for(n).unwrap()];
        w.add_tensor(*name, *dtype, shape, &bytes).unwrap();
    }
    let path = dir.path().join(name);
    w.write_to_path(&path).unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    (dir, ckpt)
}

#[lazy_module]
struct Norm {
    #[config]
    dim: usize,
    #[weight("weight", shape = [dim], dtype = [F32, f16])]
    weight: Weight,
    #[weight("bias", shape = [dim], optional, device = host)]
    bias: Option<Weight>,
}

#[strategy(unified)]
impl Norm {
    fn unified(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::layer_norm(x, &*self.weight()?, self.bias()?.as_deref(), 1e-5)
    }
}

#[lazy_module]
struct Layers {
    #[config]
    dim: usize,
    #[submodules("blk.{i}.norm", count = 2)]
    norms: Vec<Norm>,
    #[submodule("out")]
    out: Norm,
}

#[test]
fn scopes_join_prefixes_and_paths() {
    let (_d, ckpt) = checkpoint("s.gguf", &[("x", DType::F32, &[1])]);
    let root = Scope::root(&ckpt, Device::Cpu);
    let blk = root.indexed("blocks", "blk.{i}", 3);
    assert_eq!((blk.path(), blk.prefix()), ("blocks[3]", "blk.3."));
    let attn = blk.child("attn", "");
    assert_eq!((attn.path(), attn.prefix()), ("blocks[3].attn", "blk.3."));
    assert_eq!(attn.key("attn_q.weight"), "blk.3.attn_q.weight");
    assert_eq!(attn.join_path("q"), "blocks[3].attn.q");
    let norm = attn.child("norm", "attn_norm");
    assert_eq!(norm.key("weight"), "blk.3.attn_norm.weight");
}

#[test]
fn binds_lists_and_children_with_full_paths() {
    let (_d, ckpt) = checkpoint(
        "l.gguf",
        &[
            ("blk.0.norm.weight", DType::F32, &[4]),
            ("blk.1.norm.weight", DType::F16, &[4]),
            ("blk.1.norm.bias", DType::F32, &[4]),
            ("out.weight", DType::F32, &[4]),
        ],
    );
    let m = Layers::bind(4, &Scope::root(&ckpt, Device::Cpu)).unwrap();
    let mut seen = Vec::new();
    m.visit_weights(&mut |w| seen.push((w.path().to_string(), w.key().to_string())));
    assert_eq!(
        seen,
        [
            ("norms[0].weight".into(), "blk.0.norm.weight".into()),
            ("norms[1].weight".into(), "blk.1.norm.weight".into()),
            ("norms[1].bias".into(), "blk.1.norm.bias".into()),
            ("out.weight".into(), "out.weight".into()),
        ]
    );
    let mut modules = Vec::new();
    m.visit_modules(&mut |c| modules.push(c.path().to_string()));
    assert_eq!(modules, ["norms[0]", "norms[1]", "out"]);
    assert_eq!(m.parameter_count(), 16);
    let bytes = m.bytes_by_dtype();
    assert_eq!((bytes[&DType::F32], bytes[&DType::F16]), (48, 8));
    assert_eq!(ckpt.stats().bytes_read, 0);
}

#[test]
fn a_dtype_outside_the_constraint_is_a_bind_error() {
    let (_d, ckpt) = checkpoint("q.gguf", &[("weight", DType::Q8_0, &[32])]);
    let err = Norm::bind(32, &Scope::root(&ckpt, Device::Cpu))
        .err()
        .unwrap();
    match err {
        Error::Bind {
            path,
            key,
            expected,
            found,
            ..
        } => {
            assert_eq!((path.as_str(), key.as_str()), ("weight", "weight"));
            assert_eq!(
                (expected.as_str(), found.as_str()),
                ("dtype F32 or F16", "dtype Q8_0")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_weight_on_an_unavailable_device_fails_at_bind_unless_placed_on_the_host() {
    let (_d, ckpt) = checkpoint(
        "d.gguf",
        &[("weight", DType::F32, &[4]), ("bias", DType::F32, &[4])],
    );
    let err = Norm::bind(4, &Scope::root(&ckpt, Device::Cuda(0)))
        .err()
        .unwrap();
    assert!(matches!(err, Error::Device { .. }), "{err:?}");
    let (_d2, ckpt2) = checkpoint("h.gguf", &[("bias", DType::F32, &[4])]);
    let scope = Scope::root(&ckpt2, Device::Cuda(0)).child("n", "");
    let decl = crate::module::WeightDecl {
        field: "bias",
        key: "bias",
        shape: vec![4],
        dtypes: &[],
        fallback: None,
        placement: crate::module::Placement::Host,
    };
    assert_eq!(scope.weight(&decl).unwrap().device(), Device::Cpu);
}

#[test]
fn forward_materializes_times_and_rejects_unknown_modes() {
    let (_d, ckpt) = checkpoint("f.gguf", &[("weight", DType::F32, &[4])]);
    let norm = Norm::bind(4, &Scope::root(&ckpt, Device::Cpu)).unwrap();
    assert!(!norm.is_materialized());
    let x = Tensor::from_f32([1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    norm.forward(ExecutionMode::UNIFIED, &x).unwrap();
    norm.forward_unified(&x).unwrap();
    assert!(norm.is_materialized());
    assert_eq!(norm.metrics().get(ExecutionMode::UNIFIED).calls, 2);
    assert_eq!(ckpt.stats().loads, 1);
    assert_eq!(Norm::MODES, [ExecutionMode::UNIFIED]);
    let err = norm.forward(ExecutionMode::DECODE, &x).unwrap_err();
    assert!(matches!(err, Error::UnsupportedMode { .. }), "{err:?}");
}

#[test]
fn metrics_add_up_per_mode() {
    let m = ForwardMetrics::default();
    m.record(ExecutionMode::DECODE, Duration::from_nanos(5));
    m.record(ExecutionMode::DECODE, Duration::from_nanos(7));
    m.record(ExecutionMode::new("speculative"), Duration::from_nanos(1));
    assert_eq!(m.get(ExecutionMode::DECODE).calls, 2);
    assert_eq!(
        m.get(ExecutionMode::DECODE).time(),
        Duration::from_nanos(12)
    );
    assert_eq!(m.snapshot().len(), 2);
    assert_eq!(ExecutionMode::new("decode"), ExecutionMode::DECODE);
    assert_eq!(ExecutionMode::PREFILL.to_string(), "prefill");
}

#[test]
fn a_spec_for_another_module_type_is_refused() {
    let (_d, ckpt) = checkpoint("t.gguf", &[("weight", DType::F32, &[4])]);
    let norm = Norm::bind(4, &Scope::root(&ckpt, Device::Cpu)).unwrap();
    let mut spec = norm.spec();
    spec["module"] = "Other".into();
    assert!(matches!(Norm::bind_spec(&spec, &ckpt), Err(Error::Spec(_))));
    assert!(Norm::bind_spec(&norm.spec(), &ckpt).is_ok());
}
