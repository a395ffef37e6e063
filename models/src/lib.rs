//! Models built on lazyforge, and the pieces of the `lazyforge` command-line tool.

pub mod inspect;
