// A list of submodules under an indexed prefix, counted by the config.
use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::source::gguf::GgufWriter;
use lazyforge::{lazy_module, Bind, Checkpoint, DType, Device, LazyModule, Scope, Weight};

#[derive(Clone, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
struct Config {
    hidden: usize,
    n_layers: usize,
}

#[lazy_module]
struct Layer {
    #[config]
    cfg: Config,
    #[weight("attn_norm.weight", shape = [cfg.hidden])]
    norm: Weight,
}

#[lazy_module]
struct Stack {
    #[config]
    cfg: Config,
    #[submodules("blk.{i}", count = cfg.n_layers)]
    layers: Vec<Layer>,
}

fn main() {
    let path = std::env::temp_dir().join(format!("ui-pass-stack-{}.gguf", std::process::id()));
    let mut w = GgufWriter::new();
    for i in 0..3 {
        w.add_tensor(format!("blk.{i}.attn_norm.weight"), DType::F32, &[2], &[0u8; 8]).unwrap();
    }
    w.write_to_path(&path).unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    let cfg = Config { hidden: 2, n_layers: 3 };
    let stack = Stack::bind(cfg, &Scope::root(&ckpt, Device::Cpu)).unwrap();
    assert_eq!(stack.layers.len(), 3);
    assert_eq!(stack.layers[2].norm.path(), "layers[2].norm");
    assert_eq!(stack.layers[2].norm.key(), "blk.2.attn_norm.weight");
    assert_eq!(stack.children().len(), 3);
}
