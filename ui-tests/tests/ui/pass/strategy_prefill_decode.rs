// Prefill and decode paths: forward_prefill, forward_decode, forward(mode, ..), Strategy.
use lazyforge::ops::{matmul, matvec};
use lazyforge::{lazy_module, strategy, ExecutionMode, Result, Strategy, Tensor, Weight};

#[lazy_module]
struct Linear {
    #[config]
    dims: (usize, usize),
    #[weight("weight", shape = [dims.0, dims.1])]
    weight: Weight,
}

#[strategy(prefill, decode)]
impl Linear {
    /// Many rows: matrix-matrix.
    fn prefill(&self, x: &Tensor) -> Result<Tensor> {
        matmul(x, &*self.weight()?)
    }

    /// One row: matrix-vector.
    fn decode(&self, x: &Tensor) -> Result<Tensor> {
        let w = &*self.weight()?;
        matvec(&w, x)
    }
}

fn run(l: &Linear, x: &Tensor) -> Result<Tensor> {
    l.forward_prefill(x)?;
    l.forward_decode(x)?;
    l.forward(ExecutionMode::DECODE, x)
}

fn main() {
    assert_eq!(Linear::MODES, [ExecutionMode::PREFILL, ExecutionMode::DECODE]);
    let _ = run;
}
