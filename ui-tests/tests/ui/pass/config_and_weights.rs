// A module of config and weights binds to a checkpoint, reads nothing until a weight is used,
// and its accessors return the device tensors.
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::source::gguf::GgufWriter;
use lazyforge::{lazy_module, Bind, Checkpoint, DType, Device, LazyModule, Scope, Weight};

#[derive(Clone, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
struct FfnConfig {
    hidden: usize,
    intermediate: usize,
}

#[lazy_module]
struct FeedForward {
    #[config]
    cfg: FfnConfig,
    #[weight("ffn_up.weight", shape = [cfg.intermediate, cfg.hidden])]
    up: Weight,
    #[weight("ffn_down.weight", shape = [cfg.hidden, cfg.intermediate])]
    down: Weight,
}

fn main() {
    let path = std::env::temp_dir().join(format!("ui-pass-ffn-{}.gguf", std::process::id()));
    let mut w = GgufWriter::new();
    w.add_tensor("ffn_up.weight", DType::F32, &[4, 2], &[0u8; 32]).unwrap();
    w.add_tensor("ffn_down.weight", DType::F32, &[2, 4], &[0u8; 32]).unwrap();
    w.write_to_path(&path).unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    let cfg = FfnConfig { hidden: 2, intermediate: 4 };
    let ffn = FeedForward::bind(cfg, &Scope::root(&ckpt, Device::Cpu)).unwrap();
    assert_eq!(ckpt.stats().bytes_read, 0);
    assert_eq!(ffn.parameter_count(), 16);
    assert_eq!(ffn.up().unwrap().shape(), [4, 2]);
    assert!(ffn.up.is_materialized() && !ffn.down.is_materialized());
    assert_eq!(ffn.cfg.hidden, 2);
}
