// Modes lazyforge has never heard of need no change to lazyforge; arguments may borrow
// mutably and methods may be generic over lifetimes.
use lazyforge::ops::KvCache;
use lazyforge::{lazy_module, strategy, ExecutionMode, Result, Strategy, Weight};

#[lazy_module]
struct Attention {
    #[config]
    dim: usize,
    #[weight("attn_q.weight", shape = [dim, dim])]
    q: Weight,
}

#[strategy(long_context, speculative)]
impl Attention {
    fn long_context<'a>(&self, x: &'a [f32], cache: &mut KvCache) -> Result<&'a [f32]> {
        let _ = (&*self.q()?, cache.len());
        Ok(x)
    }

    fn speculative<'a>(&self, x: &'a [f32], cache: &mut KvCache) -> Result<&'a [f32]> {
        let _ = cache.len();
        Ok(&x[..1])
    }
}

const LONG_CONTEXT: ExecutionMode = ExecutionMode::new("long_context");

fn main() {
    assert_eq!(Attention::MODES, [LONG_CONTEXT, ExecutionMode::new("speculative")]);
    assert!(Attention::supports(LONG_CONTEXT) && !Attention::supports(ExecutionMode::DECODE));
    let _ = Attention::forward_speculative;
}
