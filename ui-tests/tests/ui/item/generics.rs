use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Norm<T> {
    #[weight("weight", shape = [4])]
    weight: Weight,
    #[state]
    extra: T,
}

fn main() {}
