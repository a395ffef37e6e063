use lazyforge::lazy_module;

#[lazy_module]
enum Layer {
    Dense,
    Sparse,
}

fn main() {}
