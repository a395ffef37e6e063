use lazyforge::{lazy_module, strategy, Weight};

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
}

#[strategy(unified)]
impl Clone for Linear {
    fn clone(&self) -> Self {
        unimplemented!()
    }
}

fn main() {}
