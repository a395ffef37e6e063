// `via = run`: every mode runs one method, passed its mode; entry points, `forward` and
// `Strategy::MODES` are as with one method per mode.
use lazyforge::ops::KvCache;
use lazyforge::{lazy_module, strategy, ExecutionMode, Result, Strategy, Weight};

#[lazy_module]
struct Attention {
    #[config]
    dim: usize,
    #[weight("attn_q.weight", shape = [dim, dim])]
    q: Weight,
}

#[strategy(prefill, decode, via = run)]
impl Attention {
    /// The mode picks the product; the rest is shared.
    fn run(&self, mode: ExecutionMode, x: &[f32], cache: &mut KvCache) -> Result<usize> {
        let _ = (&*self.q()?, cache.len(), x);
        Ok(if mode == ExecutionMode::DECODE { 1 } else { 2 })
    }
}

fn main() {
    assert_eq!(Attention::MODES, [ExecutionMode::PREFILL, ExecutionMode::DECODE]);
    let _: fn(&Attention, &[f32], &mut KvCache) -> Result<usize> = Attention::forward_decode;
    let _: fn(&Attention, ExecutionMode, &[f32], &mut KvCache) -> Result<usize> =
        Attention::forward;
}
