//! Verification of the `x-amzn-oidc-data` token an AWS Application Load Balancer adds to every
//! request it has authenticated.
//!
//! The token looks like a JWT but is not one by the RFCs: its segments are base64url WITH `=`
//! padding, and `exp`, `signer` and `kid` live in the header, not the payload. Standard JWT
//! libraries (including `jsonwebtoken`) reject the padding, and stripping it breaks the signature,
//! which covers the segments exactly as sent. So this is verified by hand with `p256`, in the
//! smallest code that does it:
//!
//! 1. structure (three segments, base64url with or without padding, 64-byte signature),
//! 2. header: `alg` is exactly ES256, `signer` is one of `auth.alb.arns`, `exp` not passed,
//!    `kid` is a plain identifier,
//! 3. the ALB's public key for `kid` (fetched from `auth.alb.public_key_url`, cached),
//! 4. the ECDSA P-256/SHA-256 signature over `header.payload` as received,
//! 5. only then the payload: the IdP's userinfo, from which email and groups are read.
//!
//! Everything cheap and local is checked before the key fetch, so a forged token costs at most
//! one fetch per unknown `kid` per minute (negative cache).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use moka::future::Cache;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};

use super::AuthError;
use crate::config::{AlbAuthSettings, AlbConfig};

/// base64url, padding accepted but not required: the ALB pads, tests and other proxies may not.
/// Trailing bits must be zero (the default), so each byte string has one accepted spelling per
/// padding choice.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Tolerated clock difference between the ALB and us.
const CLOCK_SKEW_SECS: i64 = 60;
/// Far above any real token (a few KiB with many groups); bounds the work done on garbage.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// A P-256 SPKI PEM is ~180 bytes; anything much larger is not a key.
const MAX_KEY_BYTES: usize = 8 * 1024;
/// ALB keys are rotated by publishing new kids; a kid's key never changes, an hour is safe.
const KEY_TTL: Duration = Duration::from_secs(3600);
const MAX_CACHED_KEYS: u64 = 256;
/// A kid whose fetch failed is not asked for again within this time.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);
const MAX_NEGATIVE_KIDS: u64 = 10_000;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Who the ALB says this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbIdentity {
    pub email: String,
    pub groups: Vec<String>,
    /// Unix seconds: the `exp` of the ALB token (its header).
    pub expires_at: i64,
}

/// Why a key could not be had; kept in the negative cache so a repeat gets the same answer.
#[derive(Debug, Clone, Copy)]
enum FetchFailure {
    NotFound,
    Unavailable,
    InvalidKey,
}

impl From<FetchFailure> for AuthError {
    fn from(f: FetchFailure) -> Self {
        match f {
            FetchFailure::NotFound => AuthError::UnknownKey,
            FetchFailure::Unavailable => AuthError::KeyUnavailable,
            FetchFailure::InvalidKey => AuthError::InvalidKey,
        }
    }
}

/// Verifies ALB tokens; build one at startup and share it (the key cache lives inside).
pub struct AlbVerifier {
    /// `auth.alb.arns`: exact strings. Empty means no ALB is trusted and every token fails.
    arns: Vec<String>,
    /// `auth.alb.public_key_url` with `{region}` already substituted; `{kid}` remains.
    key_url: String,
    email_key: String,
    groups_key: String,
    http: reqwest::Client,
    keys: Cache<String, VerifyingKey>,
    failures: Cache<String, FetchFailure>,
    fetches: AtomicU64,
}

impl AlbVerifier {
    /// Fails only when the configuration cannot work: a key URL without `{kid}` (every token
    /// would be checked against one fixed key) or an HTTP client that cannot be built.
    pub fn new(
        cfg: &AlbConfig,
        settings: &AlbAuthSettings,
        region: &str,
    ) -> Result<Self, AuthError> {
        if !cfg.public_key_url.contains("{kid}") {
            return Err(AuthError::Setup(
                "auth.alb.public_key_url must contain {kid}",
            ));
        }
        if !cfg.public_key_url.starts_with("https://") {
            tracing::warn!(
                url = %cfg.public_key_url,
                "auth.alb.public_key_url is not https: ALB keys can be tampered with in transit"
            );
        }
        if cfg.arns.is_empty() {
            tracing::warn!("auth.alb.arns is empty: every ALB token will be refused");
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // The key URL is fixed by configuration; a redirect could only lead somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("iamdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| AuthError::Setup("HTTP client for ALB keys"))?;
        Ok(AlbVerifier {
            arns: cfg.arns.clone(),
            key_url: cfg.public_key_url.replace("{region}", region),
            email_key: settings.jwt_email_key.clone(),
            groups_key: settings.jwt_groups_key.clone(),
            http,
            keys: Cache::builder()
                .max_capacity(MAX_CACHED_KEYS)
                .time_to_live(KEY_TTL)
                .build(),
            failures: Cache::builder()
                .max_capacity(MAX_NEGATIVE_KIDS)
                .time_to_live(NEGATIVE_TTL)
                .build(),
            fetches: AtomicU64::new(0),
        })
    }

    /// How many key fetches were attempted (successful or not) since start: for tests and
    /// metrics.
    pub fn key_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Verify a raw `x-amzn-oidc-data` header value.
    pub async fn verify(&self, token: &str) -> Result<AlbIdentity, AuthError> {
        self.verify_with(token, true).await
    }

    /// [`verify`](Self::verify), but with `may_fetch` false a key that is not cached is not
    /// fetched ([`AuthError::NotNow`]): for clients that used up their failed sign-ins. Valid
    /// tokens are signed with keys already cached, so they still pass.
    pub async fn verify_with(
        &self,
        token: &str,
        may_fetch: bool,
    ) -> Result<AlbIdentity, AuthError> {
        let parts = Segments::split(token)?;
        let header = json_object(&parts.header)
            .ok_or(AuthError::Malformed("header is not a JSON object"))?;

        // Pinned: no `none`, and no HS256 "signed" with the public key (the classic confusion).
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let signer = header.get("signer").and_then(Value::as_str);
        if !signer.is_some_and(|s| self.arns.iter().any(|a| a == s)) {
            return Err(AuthError::UntrustedSigner);
        }
        let exp = header
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(AuthError::MissingExpiry)?;
        if chrono::Utc::now().timestamp() > exp.saturating_add(CLOCK_SKEW_SECS) {
            return Err(AuthError::Expired);
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .filter(|k| is_plain_kid(k))
            .ok_or(AuthError::InvalidKid)?;
        // Raw r||s (JOSE form), not DER; `from_slice` also rejects r or s of 0 or ≥ n.
        if parts.signature.len() != 64 {
            return Err(AuthError::Malformed("signature is not 64 bytes"));
        }
        let signature = Signature::from_slice(&parts.signature)
            .map_err(|_| AuthError::Malformed("signature is not a P-256 r||s pair"))?;

        let key = if may_fetch {
            self.key_for(kid).await?
        } else {
            self.keys.get(kid).await.ok_or(AuthError::NotNow)?
        };
        key.verify(parts.signed.as_bytes(), &signature)
            .map_err(|_| AuthError::BadSignature)?;

        // Authenticated from here on.
        let claims = json_object(&parts.payload)
            .ok_or(AuthError::Malformed("payload is not a JSON object"))?;
        let email = claims
            .get(&self.email_key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or(AuthError::MissingEmail)?
            .to_string();
        let groups = groups_claim(claims.get(&self.groups_key));
        Ok(AlbIdentity {
            email,
            groups,
            expires_at: exp,
        })
    }

    /// The key for `kid`, from the cache or fetched once. Concurrent requests for one kid share
    /// one fetch (moka coalesces initialisation); a failure is remembered for [`NEGATIVE_TTL`]
    /// and checked inside the same initialisation, so there is no window for a second fetch.
    async fn key_for(&self, kid: &str) -> Result<VerifyingKey, AuthError> {
        self.keys
            .try_get_with_by_ref(kid, async {
                if let Some(failure) = self.failures.get(kid).await {
                    return Err(failure);
                }
                let result = self.fetch(kid).await;
                if let Err(failure) = result {
                    self.failures.insert(kid.to_owned(), failure).await;
                }
                result
            })
            .await
            .map_err(|f| AuthError::from(*f))
    }

    async fn fetch(&self, kid: &str) -> Result<VerifyingKey, FetchFailure> {
        // `kid` is [A-Za-z0-9-] only (checked by the caller), so it cannot change the URL's
        // host or path structure.
        let url = self.key_url.replace("{kid}", kid);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut response = self.http.get(&url).send().await.map_err(|e| {
            tracing::warn!(kid, error = %e, "cannot fetch ALB public key");
            FetchFailure::Unavailable
        })?;
        let status = response.status();
        if !status.is_success() {
            tracing::warn!(kid, status = status.as_u16(), "ALB public key not served");
            // S3-style key stores answer 403 for a missing object.
            return Err(match status.as_u16() {
                403 | 404 | 410 => FetchFailure::NotFound,
                _ => FetchFailure::Unavailable,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| FetchFailure::Unavailable)?
        {
            if body.len() + chunk.len() > MAX_KEY_BYTES {
                return Err(FetchFailure::InvalidKey);
            }
            body.extend_from_slice(&chunk);
        }
        let pem = std::str::from_utf8(&body).map_err(|_| FetchFailure::InvalidKey)?;
        let key = p256::PublicKey::from_public_key_pem(pem.trim()).map_err(|_| {
            tracing::warn!(kid, "ALB public key is not a P-256 PEM public key");
            FetchFailure::InvalidKey
        })?;
        Ok(VerifyingKey::from(&key))
    }
}

/// A token cut into its parts; `signed` is the `header.payload` text exactly as received,
/// which is what the ALB signed (padding included).
struct Segments<'a> {
    signed: &'a str,
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> Segments<'a> {
    fn split(token: &'a str) -> Result<Self, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed("too long"));
        }
        let mut it = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(AuthError::Malformed("not three dot-separated segments"));
        };
        let decode = |seg: &str| {
            B64URL
                .decode(seg)
                .map_err(|_| AuthError::Malformed("bad base64url"))
        };
        Ok(Segments {
            signed: &token[..h.len() + 1 + p.len()],
            header: decode(h)?,
            payload: decode(p)?,
            signature: decode(s)?,
        })
    }
}

fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// `^[A-Za-z0-9-]{1,128}$`: the kid goes into a URL, so nothing that could add a path segment,
/// query, or host (`/`, `.`, `?`, `@`, `%`) gets through.
fn is_plain_kid(kid: &str) -> bool {
    (1..=128).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The groups claim as IdPs send it: a JSON array of strings, or one comma-separated string.
/// Anything else (absent, null, a number) means no groups: it can only take rights away.
fn groups_claim(value: Option<&Value>) -> Vec<String> {
    let clean = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(clean)
            .collect(),
        Some(Value::String(s)) => s.split(',').filter_map(clean).collect(),
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use hmac::{Hmac, KeyInit, Mac};
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::elliptic_curve::rand_core::OsRng;
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    const ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/iamdesk/50dc6c495c0c9188";
    const KID: &str = "c2f80c8b-c05c-4068-af14-17299f7896b1";

    /// A key server like `public-keys.auth.elb.{region}.amazonaws.com`: PEM at `/{kid}`, 404
    /// otherwise; counts requests per kid.
    struct KeyServer {
        keys: HashMap<String, String>,
        hits: std::sync::Mutex<HashMap<String, usize>>,
        total: AtomicUsize,
    }

    impl KeyServer {
        fn hits(&self, kid: &str) -> usize {
            self.hits
                .lock()
                .expect("lock")
                .get(kid)
                .copied()
                .unwrap_or(0)
        }
    }

    async fn serve_key(
        State(server): State<Arc<KeyServer>>,
        Path(kid): Path<String>,
    ) -> (StatusCode, String) {
        server.total.fetch_add(1, Ordering::Relaxed);
        *server
            .hits
            .lock()
            .expect("lock")
            .entry(kid.clone())
            .or_default() += 1;
        match server.keys.get(&kid) {
            Some(pem) => (StatusCode::OK, pem.clone()),
            None => (StatusCode::NOT_FOUND, "not found".into()),
        }
    }

    struct Fixture {
        signing: SigningKey,
        pem: String,
        server: Arc<KeyServer>,
        verifier: AlbVerifier,
    }

    async fn fixture() -> Fixture {
        fixture_with(AlbAuthSettings::default()).await
    }

    async fn fixture_with(settings: AlbAuthSettings) -> Fixture {
        let signing = SigningKey::random(&mut OsRng);
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let server = Arc::new(KeyServer {
            keys: HashMap::from([(KID.to_string(), pem.clone())]),
            hits: Default::default(),
            total: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/{kid}", axum::routing::get(serve_key))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let cfg = AlbConfig {
            arns: vec![ARN.to_string()],
            public_key_url: format!("http://127.0.0.1:{port}/{{kid}}"),
        };
        let verifier = AlbVerifier::new(&cfg, &settings, "us-east-1").expect("verifier");
        Fixture {
            signing,
            pem,
            server,
            verifier,
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn alb_header(kid: &str, exp: i64) -> Value {
        json!({
            "typ": "JWT",
            "kid": kid,
            "alg": "ES256",
            "iss": "https://idp.example.com",
            "client": "iamdesk-client",
            "signer": ARN,
            "exp": exp,
        })
    }

    fn userinfo() -> Value {
        json!({
            "sub": "00u1a2b3c4",
            "email": "alice@example.com",
            "groups": ["engineering", "iam-admins"],
        })
    }

    /// JSON whose base64 needs padding (length not a multiple of 3), so that "with padding" and
    /// "without padding" really are different bytes on the wire.
    fn needs_padding(mut v: Value) -> Vec<u8> {
        let mut filler = String::new();
        loop {
            v["x"] = Value::String(filler.clone());
            let bytes = serde_json::to_vec(&v).expect("json");
            if !bytes.len().is_multiple_of(3) {
                return bytes;
            }
            filler.push('x');
        }
    }

    fn encode(bytes: &[u8], padded: bool) -> String {
        if padded {
            URL_SAFE.encode(bytes)
        } else {
            URL_SAFE_NO_PAD.encode(bytes)
        }
    }

    /// Sign like the ALB does: ES256 over `header.payload` as encoded, raw r||s signature.
    fn sign(key: &SigningKey, header: &Value, payload: &Value, padded: bool) -> String {
        let input = format!(
            "{}.{}",
            encode(&needs_padding(header.clone()), padded),
            encode(&needs_padding(payload.clone()), padded)
        );
        let signature: Signature = key.sign(input.as_bytes());
        format!("{input}.{}", encode(&signature.to_bytes(), padded))
    }

    fn valid_token(f: &Fixture) -> String {
        sign(&f.signing, &alb_header(KID, now() + 120), &userinfo(), true)
    }

    /// The error, checked never to echo any part of the token.
    async fn rejection(f: &Fixture, token: &str) -> AuthError {
        let err = f
            .verifier
            .verify(token)
            .await
            .expect_err("must be rejected");
        let msg = err.to_string();
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!msg.contains(part), "error message echoes the token: {msg}");
        }
        err
    }

    #[tokio::test]
    async fn padded_alb_token_is_accepted() {
        let f = fixture().await;
        let exp = now() + 120;
        let token = sign(&f.signing, &alb_header(KID, exp), &userinfo(), true);
        assert_eq!(token.split('.').filter(|s| s.ends_with('=')).count(), 3);
        let id = f.verifier.verify(&token).await.expect("valid");
        assert_eq!(
            id,
            AlbIdentity {
                email: "alice@example.com".into(),
                groups: vec!["engineering".into(), "iam-admins".into()],
                expires_at: exp,
            }
        );
    }

    #[tokio::test]
    async fn unpadded_token_signed_over_unpadded_bytes_is_accepted() {
        let f = fixture().await;
        let token = sign(
            &f.signing,
            &alb_header(KID, now() + 120),
            &userinfo(),
            false,
        );
        assert!(!token.contains('='));
        let id = f.verifier.verify(&token).await.expect("valid");
        assert_eq!(id.email, "alice@example.com");
    }

    #[tokio::test]
    async fn stripping_the_padding_breaks_the_signature() {
        let f = fixture().await;
        let stripped = valid_token(&f).replace('=', "");
        assert!(matches!(
            rejection(&f, &stripped).await,
            AuthError::BadSignature
        ));
    }

    #[tokio::test]
    async fn expired_token_is_rejected() {
        let f = fixture().await;
        let token = sign(
            &f.signing,
            &alb_header(KID, now() - 3600),
            &userinfo(),
            true,
        );
        assert!(matches!(rejection(&f, &token).await, AuthError::Expired));
        // Within the skew it still passes: the ALB's clock may be a little ahead of ours.
        let token = sign(&f.signing, &alb_header(KID, now() - 10), &userinfo(), true);
        assert!(f.verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn missing_or_non_numeric_exp_is_rejected() {
        let f = fixture().await;
        let mut header = alb_header(KID, 0);
        header.as_object_mut().expect("object").remove("exp");
        let token = sign(&f.signing, &header, &userinfo(), true);
        assert!(matches!(
            rejection(&f, &token).await,
            AuthError::MissingExpiry
        ));
        header["exp"] = json!("tomorrow");
        let token = sign(&f.signing, &header, &userinfo(), true);
        assert!(matches!(
            rejection(&f, &token).await,
            AuthError::MissingExpiry
        ));
    }

    #[tokio::test]
    async fn wrong_or_missing_signer_is_rejected() {
        let f = fixture().await;
        for signer in [
            json!(format!("{ARN}-other")),
            json!(ARN.to_uppercase()),
            json!(&ARN[..ARN.len() - 1]),
            Value::Null,
        ] {
            let mut header = alb_header(KID, now() + 120);
            header["signer"] = signer;
            let token = sign(&f.signing, &header, &userinfo(), true);
            assert!(matches!(
                rejection(&f, &token).await,
                AuthError::UntrustedSigner
            ));
        }
        assert_eq!(f.verifier.key_fetches(), 0, "rejected before any fetch");
    }

    #[tokio::test]
    async fn unknown_kid_is_rejected_and_not_refetched_within_the_minute() {
        let f = fixture().await;
        let token = sign(
            &f.signing,
            &alb_header("no-such-kid", now() + 120),
            &userinfo(),
            true,
        );
        assert!(matches!(rejection(&f, &token).await, AuthError::UnknownKey));
        for _ in 0..5 {
            assert!(matches!(rejection(&f, &token).await, AuthError::UnknownKey));
        }
        assert_eq!(f.verifier.key_fetches(), 1);
        assert_eq!(f.server.hits("no-such-kid"), 1);
    }

    #[tokio::test]
    async fn key_is_fetched_once_for_many_verifications() {
        let f = fixture().await;
        for _ in 0..20 {
            f.verifier.verify(&valid_token(&f)).await.expect("valid");
        }
        assert_eq!(f.verifier.key_fetches(), 1);
        assert_eq!(f.server.hits(KID), 1);
    }

    #[tokio::test]
    async fn concurrent_first_verifications_share_one_fetch() {
        let f = Arc::new(fixture().await);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move { f.verifier.verify(&valid_token(&f)).await.is_ok() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.expect("task"));
        }
        assert_eq!(f.server.total.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn tampered_payload_is_rejected() {
        let f = fixture().await;
        let token = valid_token(&f);
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = userinfo();
        claims["email"] = json!("mallory@example.com");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            encode(&needs_padding(claims), true),
            parts[2]
        );
        assert!(matches!(
            rejection(&f, &forged).await,
            AuthError::BadSignature
        ));
    }

    #[tokio::test]
    async fn token_signed_by_another_key_is_rejected() {
        let f = fixture().await;
        let other = SigningKey::random(&mut OsRng);
        let token = sign(&other, &alb_header(KID, now() + 120), &userinfo(), true);
        assert!(matches!(
            rejection(&f, &token).await,
            AuthError::BadSignature
        ));
    }

    #[tokio::test]
    async fn alg_none_is_rejected() {
        let f = fixture().await;
        let mut header = alb_header(KID, now() + 120);
        header["alg"] = json!("none");
        for token in [
            format!(
                "{}.{}.",
                encode(&needs_padding(header.clone()), true),
                encode(&needs_padding(userinfo()), true)
            ),
            sign(&f.signing, &header, &userinfo(), true),
        ] {
            assert!(matches!(
                rejection(&f, &token).await,
                AuthError::UnsupportedAlgorithm
            ));
        }
        assert_eq!(f.verifier.key_fetches(), 0);
    }

    #[tokio::test]
    async fn hs256_signed_with_the_public_key_pem_is_rejected() {
        let f = fixture().await;
        // Make sure the key is cached: the attack must fail even when the PEM is at hand.
        f.verifier.verify(&valid_token(&f)).await.expect("valid");
        let mut header = alb_header(KID, now() + 120);
        header["alg"] = json!("HS256");
        let input = format!(
            "{}.{}",
            encode(&needs_padding(header), true),
            encode(&needs_padding(userinfo()), true)
        );
        let mut mac =
            <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(f.pem.as_bytes()).expect("hmac key");
        mac.update(input.as_bytes());
        let token = format!("{input}.{}", encode(&mac.finalize().into_bytes(), true));
        assert!(matches!(
            rejection(&f, &token).await,
            AuthError::UnsupportedAlgorithm
        ));
        // Case variants are not ES256 either.
        let mut header = alb_header(KID, now() + 120);
        header["alg"] = json!("es256");
        let token = sign(&f.signing, &header, &userinfo(), true);
        assert!(matches!(
            rejection(&f, &token).await,
            AuthError::UnsupportedAlgorithm
        ));
    }

    #[tokio::test]
    async fn malformed_tokens_are_rejected_without_fetching() {
        let f = fixture().await;
        let good = valid_token(&f);
        let parts: Vec<&str> = good.split('.').collect();
        let header_seg = parts[0];
        let payload_seg = parts[1];
        let short_sig = encode(&[7u8; 63], true);
        let der_like = encode(&[0x30u8; 72], true);
        let cases = [
            String::new(),
            "abc".to_string(),
            format!("{header_seg}.{payload_seg}"),
            format!("{good}.extra"),
            format!("{header_seg}.{payload_seg}.!!!"),
            format!("{header_seg}.p*yload.{}", parts[2]),
            format!("{}.{payload_seg}.{}", encode(b"not json", true), parts[2]),
            format!("{}.{payload_seg}.{}", encode(b"[1,2]", true), parts[2]),
            format!("{header_seg}.{payload_seg}.{short_sig}"),
            format!("{header_seg}.{payload_seg}.{der_like}"),
            format!("{header_seg}.{payload_seg}.{}", encode(&[0u8; 64], true)),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ];
        for token in cases {
            let err = rejection(&f, &token).await;
            assert!(
                matches!(err, AuthError::Malformed(_)),
                "{token:.40}: {err:?}"
            );
        }
        assert_eq!(f.verifier.key_fetches(), 0);
    }

    #[tokio::test]
    async fn kid_that_could_alter_the_url_is_never_fetched() {
        let f = fixture().await;
        for kid in [
            "../admin",
            "a/b",
            "a?b=c",
            "a.b",
            "x@evil.example",
            "%2e%2e",
            "",
            &"a".repeat(129),
        ] {
            let token = sign(&f.signing, &alb_header(kid, now() + 120), &userinfo(), true);
            assert!(matches!(rejection(&f, &token).await, AuthError::InvalidKid));
        }
        let mut header = alb_header(KID, now() + 120);
        header.as_object_mut().expect("object").remove("kid");
        let token = sign(&f.signing, &header, &userinfo(), true);
        assert!(matches!(rejection(&f, &token).await, AuthError::InvalidKid));
        assert_eq!(f.verifier.key_fetches(), 0);
        assert_eq!(f.server.total.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn missing_email_is_rejected_and_claim_names_are_configurable() {
        let f = fixture().await;
        let mut claims = userinfo();
        claims["email"] = json!("  ");
        let token = sign(&f.signing, &alb_header(KID, now() + 120), &claims, true);
        assert!(matches!(
            rejection(&f, &token).await,
            AuthError::MissingEmail
        ));
        claims.as_object_mut().expect("object").remove("email");
        let token = sign(&f.signing, &alb_header(KID, now() + 120), &claims, true);
        assert!(matches!(
            rejection(&f, &token).await,
            AuthError::MissingEmail
        ));

        // ConsoleMe's ALB example reads the email from `sub`; groups as a comma list.
        let f = fixture_with(AlbAuthSettings {
            jwt_email_key: "sub".into(),
            jwt_groups_key: "custom:groups".into(),
        })
        .await;
        let claims = json!({"sub": "bob@example.com", "custom:groups": "ops, dev,,audit "});
        let token = sign(&f.signing, &alb_header(KID, now() + 120), &claims, true);
        let id = f.verifier.verify(&token).await.expect("valid");
        assert_eq!(id.email, "bob@example.com");
        assert_eq!(id.groups, ["ops", "dev", "audit"]);

        let claims = json!({"sub": "bob@example.com"});
        let token = sign(&f.signing, &alb_header(KID, now() + 120), &claims, true);
        assert!(
            f.verifier
                .verify(&token)
                .await
                .expect("valid")
                .groups
                .is_empty()
        );
    }

    #[test]
    fn groups_claim_shapes() {
        assert_eq!(groups_claim(Some(&json!(["a", 1, " b ", ""]))), ["a", "b"]);
        assert_eq!(groups_claim(Some(&json!("a,b"))), ["a", "b"]);
        assert!(groups_claim(Some(&json!(42))).is_empty());
        assert!(groups_claim(Some(&Value::Null)).is_empty());
        assert!(groups_claim(None).is_empty());
    }

    #[test]
    fn key_url_needs_a_kid_placeholder() {
        let cfg = AlbConfig {
            arns: vec![ARN.into()],
            public_key_url: "https://keys.example.com/fixed".into(),
        };
        assert!(matches!(
            AlbVerifier::new(&cfg, &AlbAuthSettings::default(), "us-east-1"),
            Err(AuthError::Setup(_))
        ));
        let v = AlbVerifier::new(
            &AlbConfig::default(),
            &AlbAuthSettings::default(),
            "eu-west-1",
        )
        .expect("default config");
        assert_eq!(
            v.key_url,
            "https://public-keys.auth.elb.eu-west-1.amazonaws.com/{kid}"
        );
    }
}
