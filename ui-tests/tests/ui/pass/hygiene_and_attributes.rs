// Other attributes pass through; fields may be named like generated internals; the module
// is Send + Sync and Debug.
use lazyforge::{lazy_module, Weight};

/// Doc comments and derives are kept.
#[lazy_module]
#[derive(Debug)]
#[allow(dead_code)]
pub struct Internals {
    /// The config.
    #[config]
    pub scope: usize,
    #[weight("meta", shape = [scope])]
    pub meta: Weight,
    #[weight("cell", shape = [*scope])]
    cell: Weight,
    #[weight("source", shape = [scope, 2])]
    source: Weight,
    #[cfg(all())]
    #[state]
    state: u8,
}

fn assert_send_sync<T: Send + Sync>() {}

fn main() {
    assert_send_sync::<Internals>();
}
