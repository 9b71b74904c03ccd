//! Redis cache (being written).
