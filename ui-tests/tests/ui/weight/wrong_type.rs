use lazyforge::{lazy_module, Tensor};

#[lazy_module]
struct Norm {
    #[config]
    dim: usize,
    #[weight("weight", shape = [dim])]
    weight: Tensor,
}

fn main() {}
