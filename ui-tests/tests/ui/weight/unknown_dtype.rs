use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Linear {
    #[config]
    dim: usize,
    #[weight("weight", shape = [dim, dim], dtype = [Q4_0, Q4K])]
    weight: Weight,
}

fn main() {}
