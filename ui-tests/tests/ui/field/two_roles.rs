use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Linear {
    #[config]
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
}

fn main() {}
