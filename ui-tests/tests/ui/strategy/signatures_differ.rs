use lazyforge::{lazy_module, strategy, Result, Tensor, Weight};

#[lazy_module]
struct Linear {
    #[weight("weight", shape = [4, 4])]
    weight: Weight,
}

#[strategy(prefill, decode)]
impl Linear {
    fn prefill(&self, x: &Tensor) -> Result<Tensor> {
        lazyforge::ops::matmul(x, &*self.weight()?)
    }

    fn decode(&self, x: &[f32]) -> Result<Tensor> {
        let y = lazyforge::ops::cpu::matvec(&*self.weight()?, x)?;
        Tensor::from_f32([1, 4], y)
    }
}

fn main() {}
