//! Personal API tokens.
