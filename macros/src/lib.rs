//! Procedural macros for lazyforge: `#[lazy_module]` and `#[strategy]`.
//!
//! The macros themselves arrive with the macro issue; this crate exists so the workspace
//! layout (and the runtime's re-export) is in place from the start.
