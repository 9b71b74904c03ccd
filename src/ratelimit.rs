//! Per-key rate limits (GCRA, `governor`). Over the limit → 429 with `Retry-After`.
//!
//! Two kinds, for two questions:
//! - [`Limiter`]: every request counts (the API and every state-changing form, per user, or per
//!   client address when anonymous);
//! - [`FailureLimiter`]: only *failed* sign-ins count, per client address. A valid session or
//!   token is never asked about it, so nobody's failures slow down a signed-in user, not even
//!   from the same address (behind a NAT or a proxy that was not declared, everybody shares one).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

#[derive(Clone)]
pub struct Limiter {
    inner: Arc<DefaultKeyedRateLimiter<String>>,
    what: &'static str,
}

impl Limiter {
    /// `per_minute` requests per key per minute, with bursts up to the same number.
    pub fn per_minute(per_minute: u32, what: &'static str) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Limiter {
            inner: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            what,
        }
    }

    /// Count one request for `key`; `Err` once the key is over its limit.
    pub fn check(&self, key: &str) -> Result<(), AppError> {
        self.wait_for(key).map_err(|secs| self.refusal(secs))
    }

    /// Count one for `key`; `Err(seconds to wait)` when over the limit.
    fn wait_for(&self, key: &str) -> Result<(), u64> {
        match self.inner.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
            }
        }
    }

    fn refusal(&self, secs: u64) -> AppError {
        tracing::info!(limit = self.what, "rate limit reached");
        AppError::TooManyRequests(
            format!(
                "Too many {} requests. Try again in {secs} second(s).",
                self.what
            ),
            secs,
        )
    }

    /// Forget idle keys so memory stays bounded; called periodically.
    pub fn shrink(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// Failed sign-ins per client address. [`record`](Self::record) counts one failure; once an
/// address is over its budget it is [`blocked`](Self::blocked) until the budget refills, and a
/// failed attempt from it gets 429 instead of 401. Callers ask `blocked` only before work that
/// costs us something (fetching an unknown ALB key), never before checking a credential that
/// may be valid.
#[derive(Clone)]
pub struct FailureLimiter {
    counter: Limiter,
    /// Address → when it may try again (the GCRA's answer at the failure that crossed the line).
    blocked: moka::sync::Cache<String, Instant>,
}

impl FailureLimiter {
    pub fn per_minute(per_minute: u32) -> Self {
        FailureLimiter {
            counter: Limiter::per_minute(per_minute, "failed sign-in"),
            blocked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Count a failed sign-in from `addr`; the 429 to answer with when it is over the budget.
    pub fn record(&self, addr: &str) -> Result<(), AppError> {
        match self.counter.wait_for(addr) {
            Ok(()) => Ok(()),
            Err(secs) => {
                self.blocked
                    .insert(addr.to_string(), Instant::now() + Duration::from_secs(secs));
                Err(self.counter.refusal(secs))
            }
        }
    }

    /// Seconds `addr` must still wait, when it used up its failures.
    pub fn blocked(&self, addr: &str) -> Option<u64> {
        let until = self.blocked.get(addr)?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(left.as_secs().max(1))
    }

    pub fn shrink(&self) {
        self.counter.shrink();
        self.blocked.run_pending_tasks();
    }
}

/// How often idle keys are dropped.
pub const SHRINK_EVERY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let l = Limiter::per_minute(3, "API");
        for _ in 0..3 {
            assert!(l.check("alice").is_ok());
        }
        match l.check("alice") {
            Err(AppError::TooManyRequests(_, secs)) => assert!((1..=60).contains(&secs)),
            other => panic!("4th request must be limited: {other:?}"),
        }
        assert!(l.check("bob").is_ok(), "other keys are independent");
    }

    #[test]
    fn only_failures_count_and_block_their_address() {
        let l = FailureLimiter::per_minute(2);
        assert_eq!(l.blocked("10.0.0.1"), None);
        assert!(l.record("10.0.0.1").is_ok());
        assert!(l.record("10.0.0.1").is_ok());
        assert_eq!(l.blocked("10.0.0.1"), None, "at the limit, not over it");
        assert!(matches!(
            l.record("10.0.0.1"),
            Err(AppError::TooManyRequests(..))
        ));
        assert!(l.blocked("10.0.0.1").is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(
            l.blocked("10.0.0.2"),
            None,
            "other addresses are independent"
        );
    }
}
