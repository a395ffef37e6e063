use lazyforge::{lazy_module, Tensor};

#[lazy_module]
struct Block {
    #[config]
    dim: usize,
    #[submodule("attn")]
    attn: Tensor,
}

fn main() {}
