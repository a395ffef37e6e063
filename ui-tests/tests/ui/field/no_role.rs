use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
    scratch: Vec<f32>,
}

fn main() {}
