use lazyforge::{lazy_module, Weight};
use std::rc::Rc;

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
    #[state]
    shared: Rc<Vec<f32>>,
}

fn main() {}
