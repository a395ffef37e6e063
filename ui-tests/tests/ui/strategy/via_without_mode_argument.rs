use lazyforge::{lazy_module, strategy, Result, Tensor, Weight};

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
}

#[strategy(prefill, decode, via = run)]
impl Linear {
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        lazyforge::ops::matmul(x, &*self.weight()?)
    }
}

fn main() {}
