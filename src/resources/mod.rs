//! Synced IAM resources: the model, how the Store keeps them, this replica's in-memory view with
//! its search index, and the sync that fills them.

pub mod account;
pub mod demo;
pub mod index;
pub mod model;
pub mod service;
pub mod stored;
pub mod sync;
