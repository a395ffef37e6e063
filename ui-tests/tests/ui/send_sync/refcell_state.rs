use lazyforge::{lazy_module, Weight};
use std::cell::RefCell;

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
    #[state]
    scratch: RefCell<Vec<f32>>,
}

fn main() {}
