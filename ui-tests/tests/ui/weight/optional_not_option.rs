use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Linear {
    #[config]
    dim: usize,
    #[weight("bias", shape = [dim], optional)]
    bias: Weight,
}

fn main() {}
