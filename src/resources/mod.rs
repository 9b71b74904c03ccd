//! Synced IAM resources: the model, and the in-memory search index behind `/policies`.

pub mod demo;
pub mod index;
pub mod model;
pub mod service;
pub mod sync;
