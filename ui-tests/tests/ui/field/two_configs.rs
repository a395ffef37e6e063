use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Linear {
    #[config]
    rows: usize,
    #[config]
    cols: usize,
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
}

fn main() {}
