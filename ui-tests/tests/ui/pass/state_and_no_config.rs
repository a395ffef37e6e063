// A module without config (its Config is `()`), with plain state beside its weights.
use lazyforge::{lazy_module, Bind, Weight};
use std::sync::atomic::AtomicU64;

#[lazy_module]
struct Scalar {
    #[weight("scale", shape = [1])]
    scale: Weight,
    #[state]
    calls: AtomicU64,
}

fn assert_unit_config<M: Bind<Config = ()>>() {}

fn main() {
    assert_unit_config::<Scalar>();
}
