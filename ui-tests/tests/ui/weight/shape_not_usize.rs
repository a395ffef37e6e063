use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Linear {
    #[config]
    scale: f32,
    #[weight("weight", shape = [scale, 4])]
    weight: Weight,
}

fn main() {}
