// Submodules under a key prefix, in the parent's own scope, and with their own config.
use lazyforge::{lazy_module, Bind, Weight};

#[lazy_module]
struct Norm {
    #[config]
    dim: usize,
    #[weight("weight", shape = [dim])]
    weight: Weight,
}

#[lazy_module]
struct Mixer {
    #[config]
    dim: usize,
    #[submodule("attn_norm")]
    pre: Norm,
    #[submodule]
    same_scope: Norm,
    #[submodule("post_norm", config = *dim * 2)]
    wide: Norm,
}

fn assert_bind<M: Bind<Config = usize>>() {}

fn main() {
    assert_bind::<Mixer>();
}
