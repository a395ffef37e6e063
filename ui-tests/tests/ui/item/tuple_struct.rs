use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Norm(Weight, Weight);

fn main() {}
