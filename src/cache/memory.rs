//! In-process cache (being written).
