//! Self-service wizard: permission templates.

pub mod templates;
