//! Interactive sign-ins (ALB token, proxy header, demo): recorded per user with the groups the
//! identity provider gave, so API tokens act with today's groups (not those of the day the
//! token was made) and stop working when their owner no longer signs in
//! (`auth.api_token_max_idle_days`).
//!
//! Every page view is such a sign-in, so writes are skipped while this replica recorded the same
//! groups for the user within [`RECORD_EVERY`]: a changed group list is written at once, the
//! time at most once per period (the idle limit counts days).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::Utc;

use crate::store::{SignIn, Store, StoreError};

pub const RECORD_EVERY: Duration = Duration::from_secs(3600);

/// Remembers, per user, the groups last written by this replica.
pub struct SignIns {
    written: moka::sync::Cache<String, u64>,
}

impl Default for SignIns {
    fn default() -> Self {
        SignIns {
            written: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(RECORD_EVERY)
                .build(),
        }
    }
}

fn fingerprint(groups: &[String]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    groups.hash(&mut h);
    h.finish()
}

impl SignIns {
    /// Record that `user` signed in with `groups`, unless this replica just did.
    pub async fn touch(
        &self,
        store: &dyn Store,
        user: &str,
        groups: &[String],
    ) -> Result<(), StoreError> {
        let print = fingerprint(groups);
        if self.written.get(user) == Some(print) {
            return Ok(());
        }
        store
            .record_sign_in(&SignIn {
                user: user.to_string(),
                groups: groups.to_vec(),
                at: Utc::now(),
            })
            .await?;
        self.written.insert(user.to_string(), print);
        Ok(())
    }
}
