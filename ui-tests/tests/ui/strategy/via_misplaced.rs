use lazyforge::{lazy_module, strategy, ExecutionMode, Result, Tensor, Weight};

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
}

#[strategy(prefill, via = run, decode)]
impl Linear {
    fn run(&self, _mode: ExecutionMode, x: &Tensor) -> Result<Tensor> {
        lazyforge::ops::matmul(x, &*self.weight()?)
    }
}

fn main() {}
