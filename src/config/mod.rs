//! Configuration contract (GUIDE §2). Typed structs live in `model.rs`; discovery, `extends`
//! merging, duplicate-key and type errors live in `load.rs` and the modules it drives.

mod compat;
mod de;
mod expand;
mod keys;
mod load;
mod model;
mod redact;
mod safety;
mod tree;

pub use compat::normalize_account_id;
pub use load::{
    ConfigError, Loaded, SourcePos, default_locations, discover, load, load_file,
    load_file_with_env, redacted_yaml,
};
pub use model::*;
pub use safety::unsafe_settings;
