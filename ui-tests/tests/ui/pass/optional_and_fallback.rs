// An optional weight is `None` when the file lacks it; a fallback key stands in for a missing
// one (tied embeddings).
use lazyforge::source::gguf::GgufWriter;
use lazyforge::{lazy_module, Bind, Checkpoint, DType, Device, Scope, Weight};

#[lazy_module]
struct Head {
    #[config]
    dims: (usize, usize),
    #[weight("token_embd.weight", shape = [dims.0, dims.1])]
    embed: Weight,
    #[weight("output.weight", shape = [dims.0, dims.1], fallback = "token_embd.weight")]
    output: Weight,
    #[weight("output.bias", shape = [dims.0], optional)]
    bias: Option<Weight>,
}

fn main() {
    let path = std::env::temp_dir().join(format!("ui-pass-head-{}.gguf", std::process::id()));
    let mut w = GgufWriter::new();
    w.add_tensor("token_embd.weight", DType::F32, &[3, 2], &[0u8; 24]).unwrap();
    w.write_to_path(&path).unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    let head = Head::bind((3, 2), &Scope::root(&ckpt, Device::Cpu)).unwrap();
    assert_eq!(head.output.key(), "token_embd.weight");
    assert!(head.bias.is_none());
    assert!(head.bias().unwrap().is_none());
}
