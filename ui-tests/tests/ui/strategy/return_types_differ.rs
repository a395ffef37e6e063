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

    fn decode(&self, x: &Tensor) -> Result<Vec<f32>> {
        lazyforge::ops::matvec(&*self.weight()?, x)?.to_f32_vec()
    }
}

fn main() {}
