//! Empty: the model is in `tests/slot.rs`.
