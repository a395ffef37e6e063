// Allowed stored dtypes (one, or a list, in either case) and keeping a weight on the host.
use lazyforge::{lazy_module, Weight};

#[lazy_module]
pub struct Embedding {
    #[config]
    shape: [usize; 2],
    #[weight("token_embd.weight", shape = [shape[0], shape[1]], dtype = [Q4_0, q8_0, F16, F32], device = host)]
    pub table: Weight,
    #[weight("token_embd.scale", shape = [shape[1]], dtype = F32)]
    pub scale: Weight,
}

fn main() {}
