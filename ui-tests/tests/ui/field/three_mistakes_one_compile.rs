// Every mistake is reported in one compile, each once.
use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Attention {
    #[config]
    dim: usize,
    #[weight("attn_q.weight", shape = [dim, dim], dtyp = F32)]
    q: Weight,
    #[weight("attn_q.weight", shape = [dim, dim])]
    k: Weight,
    #[submodules("blk.{i}")]
    layers: Vec<Attention>,
}

fn main() {}
