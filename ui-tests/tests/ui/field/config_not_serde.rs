use lazyforge::{lazy_module, Weight};

#[derive(Clone)]
struct Config {
    hidden: usize,
}

#[lazy_module]
struct Norm {
    #[config]
    cfg: Config,
    #[weight("weight", shape = [cfg.hidden])]
    weight: Weight,
}

fn main() {}
