use lazyforge::{lazy_module, Weight};

#[lazy_module(prefix = "blk")]
struct Norm {
    #[weight("weight", shape = [4])]
    weight: Weight,
}

fn main() {}
