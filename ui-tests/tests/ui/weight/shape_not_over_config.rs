use lazyforge::serde::{Deserialize, Serialize};
use lazyforge::{lazy_module, Weight};

#[derive(Clone, Serialize, Deserialize)]
#[serde(crate = "lazyforge::serde")]
struct Config {
    hidden: usize,
}

#[lazy_module]
struct Norm {
    #[config]
    cfg: Config,
    #[weight("weight", shape = [config.hidden])]
    weight: Weight,
}

fn main() {}
