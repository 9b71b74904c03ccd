//! The session cookie: an HS256 JWT we issue after a sign-in and verify on every request.
//!
//! Pinned to HS256 with our own issuer and audience, so neither a token from another system
//! that happens to share the secret (e.g. an old ConsoleMe cookie) nor an `alg` swap passes.
//! Each session carries a random `sid` and a random `csrf` seed for the CSRF layer.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::config::Config;

pub const ISSUER: &str = "iamdesk";
pub const AUDIENCE: &str = "iamdesk-session";
/// Shortest `jwt_secret` accepted. Anyone holding one cookie can try secrets offline, so a short
/// human-chosen secret is the weakest link; 32 random bytes is what we generate.
pub const MIN_SECRET_LEN: usize = 16;
/// Our own replicas' clocks differ by little.
const LEEWAY_SECS: u64 = 5;
/// Name of the generated dev secret file, next to the embedded database.
pub const DEV_SECRET_FILE: &str = ".iamdesk_jwt_secret";

/// What the cookie says; `sub` is the user's email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sub: String,
    pub groups: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Random session id (128 bits, hex): names this session, e.g. for audit and revocation.
    pub sid: String,
    /// Random per-session seed (256 bits, hex) the CSRF layer derives form tokens from.
    pub csrf: String,
}

/// Signs and verifies session cookies. Build once from the secret; cheap to share.
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

impl SessionKeys {
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthError::WeakSecret);
        }
        // Validation::new pins the accepted algorithms to exactly this one.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(SessionKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// Keys from the configuration: see [`require_secret`].
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        Self::new(require_secret(config)?.as_bytes())
    }

    /// A new session for `email` valid for `ttl`.
    pub fn issue(
        &self,
        email: &str,
        groups: &[String],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        self.issue_session(email, groups, ttl)
            .map(|(token, _)| token)
    }

    /// A new session for `email` valid for `ttl`: the cookie value and what it says.
    pub fn issue_session(
        &self,
        email: &str,
        groups: &[String],
        ttl: Duration,
    ) -> Result<(String, SessionClaims), AuthError> {
        let iat = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).map_err(|_| AuthError::SessionSigning)?;
        let claims = SessionClaims {
            sub: email.to_string(),
            groups: groups.to_vec(),
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
            iat,
            exp: iat.saturating_add(ttl),
            sid: random_hex::<16>().map_err(|_| AuthError::SessionSigning)?,
            csrf: random_hex::<32>().map_err(|_| AuthError::SessionSigning)?,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::SessionSigning)?;
        Ok((token, claims))
    }

    /// The claims of a cookie we issued and that has not expired.
    pub fn verify(&self, token: &str) -> Result<SessionClaims, AuthError> {
        let data = jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::SessionExpired,
            _ => AuthError::SessionInvalid,
        })?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() || claims.sid.is_empty() || claims.csrf.is_empty() {
            return Err(AuthError::SessionInvalid);
        }
        Ok(claims)
    }
}

fn random_hex<const N: usize>() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The secret for session cookies: `jwt_secret` when set; otherwise, in dev only, one generated
/// once and kept next to the embedded database. In prod a missing secret is an error: a
/// generated one would differ per replica and silently vanish with the container.
pub fn require_secret(config: &Config) -> Result<String, AuthError> {
    if let Some(secret) = config
        .jwt_secret
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthError::WeakSecret);
        }
        return Ok(secret.to_string());
    }
    if !config.is_dev() {
        return Err(AuthError::MissingSecret);
    }
    let path = dev_secret_path(&config.storage.path);
    load_or_create_dev_secret(&path).map_err(|source| AuthError::SecretFile { path, source })
}

/// Where the dev secret lives: beside the embedded database file.
pub fn dev_secret_path(database: &Path) -> PathBuf {
    database.with_file_name(DEV_SECRET_FILE)
}

/// Read the dev secret at `path`, creating it (32 random bytes, hex) on first use. The file is
/// created with mode 0600 from the start (never world-readable, not even briefly), and an existing
/// file with wider permissions is narrowed.
pub fn load_or_create_dev_secret(path: &Path) -> io::Result<String> {
    // Two attempts: if another process creates the file between our read and our create, the
    // second read picks up its secret.
    for _ in 0..2 {
        match read_secret(path) {
            Ok(Some(secret)) => return Ok(secret),
            Ok(None) => {
                // Empty or truncated (e.g. a crash mid-write): nothing can be signed with it yet
                // worth keeping, so start over.
                std::fs::remove_file(path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let secret = random_hex::<32>().map_err(|e| io::Error::other(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(secret.as_bytes())?;
                file.sync_all()?;
                return Ok(secret);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("the secret file keeps changing"))
}

/// `Ok(None)` when the file exists but holds no usable secret.
fn read_secret(path: &Path) -> io::Result<Option<String>> {
    let file = std::fs::File::open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "dev session secret was readable by others; narrowing to 0600");
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text)?;
    let secret = text.trim();
    Ok((secret.len() >= 2 * 32).then(|| secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> SessionKeys {
        SessionKeys::new(SECRET).expect("keys")
    }

    fn groups() -> Vec<String> {
        vec!["engineering".into(), "iam-admins".into()]
    }

    /// A token with our claims but chosen header, key and times.
    fn craft(alg: Algorithm, key: &EncodingKey, exp_offset: i64, iss: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = SessionClaims {
            sub: "alice@example.com".into(),
            groups: groups(),
            iss: iss.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + exp_offset,
            sid: "00".repeat(16),
            csrf: "11".repeat(32),
        };
        jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("encode")
    }

    #[test]
    fn round_trip() {
        let keys = keys();
        let token = keys
            .issue("alice@example.com", &groups(), Duration::from_secs(3600))
            .expect("issue");
        let claims = keys.verify(&token).expect("verify");
        assert_eq!(claims.sub, "alice@example.com");
        assert_eq!(claims.groups, groups());
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.sid.len(), 32);
        assert_eq!(claims.csrf.len(), 64);

        let other = keys
            .issue("alice@example.com", &groups(), Duration::from_secs(3600))
            .expect("issue");
        let other = keys.verify(&other).expect("verify");
        assert_ne!(claims.sid, other.sid, "sid is random per session");
        assert_ne!(claims.csrf, other.csrf, "csrf seed is random per session");
    }

    #[test]
    fn cookie_signed_with_another_secret_is_rejected() {
        let forger = SessionKeys::new(b"another-secret-of-enough-length!").expect("keys");
        let forged = forger
            .issue(
                "mallory@example.com",
                &["iam-admins".into()],
                Duration::from_secs(60),
            )
            .expect("issue");
        let err = keys().verify(&forged).expect_err("forged");
        assert!(matches!(err, AuthError::SessionInvalid));
        assert!(!err.to_string().contains(&forged));
    }

    #[test]
    fn expired_cookie_is_rejected() {
        let token = craft(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
            -120,
            ISSUER,
        );
        assert!(matches!(
            keys().verify(&token),
            Err(AuthError::SessionExpired)
        ));
        // Zero TTL: expired as soon as the leeway has passed, never accepted later.
        let token = craft(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
            -(LEEWAY_SECS as i64) - 2,
            ISSUER,
        );
        assert!(matches!(
            keys().verify(&token),
            Err(AuthError::SessionExpired)
        ));
    }

    #[test]
    fn other_algorithms_are_rejected() {
        let key = EncodingKey::from_secret(SECRET);
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = craft(alg, &key, 3600, ISSUER);
            assert!(
                matches!(keys().verify(&token), Err(AuthError::SessionInvalid)),
                "{alg:?}"
            );
        }
        // `alg: none` with no signature.
        let token = craft(Algorithm::HS256, &key, 3600, ISSUER);
        let mut parts = token.split('.');
        let (_, payload) = (parts.next(), parts.next().expect("payload"));
        use base64::Engine;
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        for unsigned in [format!("{none}.{payload}."), format!("{none}.{payload}")] {
            assert!(matches!(
                keys().verify(&unsigned),
                Err(AuthError::SessionInvalid)
            ));
        }
    }

    #[test]
    fn wrong_issuer_or_audience_is_rejected() {
        let key = EncodingKey::from_secret(SECRET);
        let token = craft(Algorithm::HS256, &key, 3600, "consoleme");
        assert!(matches!(
            keys().verify(&token),
            Err(AuthError::SessionInvalid)
        ));

        // A token without our audience (say, ConsoleMe's own cookie under a shared secret).
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": "alice@example.com", "groups": [], "iss": ISSUER, "iat": now,
            "exp": now + 3600, "sid": "a", "csrf": "b",
        });
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("encode");
        assert!(matches!(
            keys().verify(&token),
            Err(AuthError::SessionInvalid)
        ));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            SessionKeys::new(b"hunter2"),
            Err(AuthError::WeakSecret)
        ));
        let config = Config {
            jwt_secret: Some("hunter2".into()),
            ..Config::default()
        };
        assert!(matches!(
            require_secret(&config),
            Err(AuthError::WeakSecret)
        ));
    }

    #[test]
    fn prod_without_secret_is_an_error_naming_jwt_secret() {
        let mut config = Config::default();
        let err = require_secret(&config).expect_err("prod needs a secret");
        assert!(matches!(err, AuthError::MissingSecret));
        assert!(err.to_string().contains("jwt_secret"));
        config.jwt_secret = Some("   ".into());
        assert!(matches!(
            require_secret(&config),
            Err(AuthError::MissingSecret)
        ));
        config.jwt_secret = Some("a-long-enough-configured-secret".into());
        assert_eq!(
            require_secret(&config).expect("configured"),
            "a-long-enough-configured-secret"
        );
    }

    #[test]
    fn dev_secret_is_persisted_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            environment: Environment::Dev,
            ..Config::default()
        };
        config.storage.path = dir.path().join("data/iamdesk.db");
        let path = dir.path().join("data").join(DEV_SECRET_FILE);
        assert_eq!(dev_secret_path(&config.storage.path), path);

        let a = require_secret(&config).expect("generated");
        let b = require_secret(&config).expect("reused");
        let c = load_or_create_dev_secret(&path).expect("reused");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(std::fs::read_to_string(&path).expect("file"), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);

            // Loosened by hand: narrowed again on the next start.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert_eq!(load_or_create_dev_secret(&path).expect("reused"), a);
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A session issued with it verifies with keys built the same way later.
        let token = SessionKeys::from_config(&config)
            .expect("keys")
            .issue("dev@example.com", &[], Duration::from_secs(60))
            .expect("issue");
        assert!(
            SessionKeys::from_config(&config)
                .expect("keys")
                .verify(&token)
                .is_ok()
        );
    }

    #[test]
    fn truncated_dev_secret_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(DEV_SECRET_FILE);
        std::fs::write(&path, "abc").expect("write");
        let secret = load_or_create_dev_secret(&path).expect("replaced");
        assert_eq!(secret.len(), 64);
        assert_eq!(load_or_create_dev_secret(&path).expect("reused"), secret);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        assert_eq!(format!("{:?}", keys()), "SessionKeys(<redacted>)");
    }
}
