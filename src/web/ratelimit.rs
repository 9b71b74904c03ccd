//! Per-key rate limits (GCRA, `governor`): per user on the API, per client IP on sign-in
//! attempts. Over the limit → 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

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
        match self.inner.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                tracing::info!(limit = self.what, "rate limit reached");
                let secs = secs.max(1);
                Err(AppError::TooManyRequests(
                    format!(
                        "Too many {} requests. Try again in {secs} second(s).",
                        self.what
                    ),
                    secs,
                ))
            }
        }
    }

    /// Forget idle keys so memory stays bounded; called periodically.
    pub fn shrink(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
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
}
