use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Norm {
    #[config]
    dim: usize,
    #[weight("weight", shap = [dim])]
    weight: Weight,
}

fn main() {}
