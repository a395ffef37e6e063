use lazyforge::{lazy_module, Weight};

#[lazy_module]
struct Attention {
    #[config]
    dim: usize,
    #[weight("attn_q.weight", shape = [dim, dim])]
    q: Weight,
    #[weight("attn_q.weight", shape = [dim, dim])]
    k: Weight,
}

fn main() {}
