//! Policy requests: validation of proposed changes and the diff shown to reviewers.
//! (Lifecycle, apply and pages come with the policy-request issue.)

pub mod create;
pub mod diff;
pub mod lifecycle;
pub mod ops;
pub mod review;
pub mod validate;
