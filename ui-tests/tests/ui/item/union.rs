use lazyforge::lazy_module;

#[lazy_module]
union Bits {
    f: f32,
    u: u32,
}

fn main() {}
