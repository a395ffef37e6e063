use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::{lazy_module, Weight};

#[derive(Clone, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
struct Config {
    hidden: usize,
    intermediate: usize,
}

#[lazy_module]
struct FeedForward {
    #[config]
    cfg: Config,
    #[weight("ffn_up.weight", shape = [cfg.intermediate, cfg.hiden])]
    up: Weight,
}

fn main() {}
