//! trybuild cases for `#[lazy_module]` and `#[strategy]`: see `tests/ui.rs`.
