use lazyforge::{strategy, Result, Tensor};

struct Plain;

#[strategy(unified)]
impl Plain {
    fn unified(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

fn main() {}
