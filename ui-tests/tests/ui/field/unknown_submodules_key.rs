use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Layer {
    #[weight("attn_norm.weight", shape = [4])]
    norm: Weight,
}

#[lazy_module]
struct Stack {
    #[config]
    n_layers: usize,
    #[submodules("blk.{i}", cout = n_layers)]
    layers: Vec<Layer>,
}

fn main() {}
