//! Policy requests: the typed change model, validation, the state machine and what reviewers
//! see.
//!
//! - `model.rs`: the `Change` enum and its domain values; `Change::calls` is the exact list of
//!   IAM calls an approval makes.
//! - `validate/`: the one way from a client's JSON to typed changes (create and edit alike).
//! - `synced.rs`: what the validator knows of this installation (synced roles, own roles,
//!   quotas).
//! - `create.rs`: validate, store with the audit event and notifications, optionally apply.
//! - `approvals.rs`: which approvals a request needs (`approvals.rules`) and how far it is.
//! - `break_glass.rs`: applying one's own temporary grant at once, alerted and reviewed after.
//! - `lifecycle/`: comment, approve (claim, apply, record, refresh), reject, cancel, reopen, edit.
//! - `expiry.rs`: expiring grants taken away on time (outbox `grant` jobs), drift left alone.
//! - `risk.rs`: low to critical, with the reasons, for every change.
//! - `resource_change.rs`: changes to buckets, queues, topics and customer-managed policies.
//! - `review.rs` + `diff.rs`: each change against the role as last synced, and its calls.
//! - `imported.rs`: requests imported from ConsoleMe: their read-only changes and what approving
//!   one checks on top.

pub mod approvals;
pub mod break_glass;
pub mod create;
pub mod diff;
pub mod expiry;
pub mod imported;
pub mod lifecycle;
pub mod model;
pub mod resource_change;
pub mod review;
pub mod risk;
pub mod synced;
pub mod validate;

pub use model::{Change, ChangeList};
