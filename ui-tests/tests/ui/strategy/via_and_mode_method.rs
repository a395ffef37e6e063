use lazyforge::{lazy_module, strategy, ExecutionMode, Result, Tensor, Weight};

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
}

#[strategy(prefill, decode, via = run)]
impl Linear {
    fn run(&self, _mode: ExecutionMode, x: &Tensor) -> Result<Tensor> {
        lazyforge::ops::matmul(x, &*self.weight()?)
    }

    fn decode(&self, x: &Tensor) -> Result<Tensor> {
        lazyforge::ops::matvec(&*self.weight()?, x)
    }
}

fn main() {}
