use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Linear {
    #[weight("weight")]
    weight: Weight,
}

fn main() {}
