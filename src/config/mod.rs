//! Configuration contract (GUIDE §2). Typed structs live in `model.rs`; discovery, `extends`
//! merging, duplicate-key and type errors live in `load.rs`.

mod load;
mod model;

pub use load::{ConfigError, Loaded, load, load_file, redacted_yaml};
pub use model::*;
