// One path for every input, with a helper method beside it and extra arguments.
use lazyforge::ops::rms_norm;
use lazyforge::{lazy_module, strategy, ExecutionMode, Result, Strategy, Tensor, Weight};

#[lazy_module]
struct RmsNorm {
    #[config]
    dim: usize,
    #[weight("weight", shape = [dim])]
    weight: Weight,
}

#[strategy(unified)]
impl RmsNorm {
    fn unified(&self, x: &Tensor, eps: f32) -> Result<Tensor> {
        rms_norm(x, &*self.weight()?, self.eps(eps))
    }

    fn eps(&self, eps: f32) -> f32 {
        eps.max(1e-12)
    }
}

fn main() {
    assert_eq!(RmsNorm::MODES, [ExecutionMode::UNIFIED]);
    let _ = RmsNorm::forward_unified;
    let _ = RmsNorm::forward;
}
