//! Read-through cache in front of a Store (being written).
pub struct CachedStore;
