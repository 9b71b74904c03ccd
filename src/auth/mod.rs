//! Who signed in: verification of the ALB's `x-amzn-oidc-data` token ([`alb`]) and of our own
//! session cookie ([`session`]).
//!
//! This is the front door, so the rules are deliberately narrow: every check fails closed, the
//! accepted algorithms are pinned (ES256 for the ALB, HS256 for the cookie), and no error message
//! ever carries a token, a cookie or a secret (they end up in logs and on error pages).

pub mod access;
pub mod alb;
pub mod revocation;
pub mod session;
pub mod signins;

pub use alb::{AlbIdentity, AlbVerifier};
pub use session::{SessionClaims, SessionKeys};

/// Why a sign-in was refused. Messages are safe to log: they name the failed check, never the
/// token or any part of it (a header value an attacker controls would otherwise reach our logs).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    // --- ALB token -------------------------------------------------------------------------
    /// Not a well-formed ALB token; the reason is a fixed string, never input.
    #[error("malformed ALB token: {0}")]
    Malformed(&'static str),
    #[error("ALB token algorithm is not ES256")]
    UnsupportedAlgorithm,
    #[error("ALB token was signed by a load balancer not listed in auth.alb.arns")]
    UntrustedSigner,
    #[error("ALB token header has no numeric exp")]
    MissingExpiry,
    #[error("ALB token has expired")]
    Expired,
    #[error("ALB token kid is missing or not of the form [A-Za-z0-9-]{{1,128}}")]
    InvalidKid,
    #[error("ALB public key for this kid does not exist")]
    UnknownKey,
    /// The key server could not be reached or answered with an error: a transient failure on
    /// our side, not proof that the token is forged.
    #[error("ALB public key could not be fetched")]
    KeyUnavailable,
    #[error("ALB public key is not a P-256 public key in PEM")]
    InvalidKey,
    #[error("ALB token signature is invalid")]
    BadSignature,
    #[error("ALB token has no email claim (see get_user_by_aws_alb_auth_settings.jwt_email_key)")]
    MissingEmail,
    /// A key would have to be fetched for a client that used up its failed sign-ins.
    #[error("ALB token not checked now: too many failed sign-ins from this address")]
    NotNow,
    #[error("ALB verifier could not be built: {0}")]
    Setup(&'static str),

    // --- Session cookie ----------------------------------------------------------------------
    #[error("session has expired")]
    SessionExpired,
    /// Any other reason a cookie is not ours: wrong signature, wrong algorithm, wrong issuer,
    /// malformed. Deliberately one variant: the client learns nothing about which check failed.
    #[error("session cookie is invalid")]
    SessionInvalid,
    /// The session was signed out (on any replica).
    #[error("session was signed out")]
    SessionRevoked,
    #[error("session cookie could not be signed")]
    SessionSigning,

    // --- Secret ------------------------------------------------------------------------------
    #[error(
        "jwt_secret is required when environment is prod: set it in the configuration \
         (e.g. `jwt_secret: ${{IAMDESK_JWT_SECRET}}`, generated with `openssl rand -hex 32`), \
         or use `environment: dev` for a trial"
    )]
    MissingSecret,
    #[error(
        "jwt_secret is too short: use at least {min} bytes (e.g. `openssl rand -hex 32`)",
        min = session::MIN_SECRET_LEN
    )]
    WeakSecret,
    #[error("cannot keep the dev session secret in {path}: {source}")]
    SecretFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
