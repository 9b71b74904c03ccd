//! SNS over HTTPS: every message is verified before anything is acted on, following AWS's
//! "Verifying the signatures of Amazon SNS messages":
//!
//! 1. `TopicArn` must be one of `events.sns_topics` (checked first: it costs nothing).
//! 2. `SigningCertURL` must be `https://sns.<topic's region>.amazonaws.com/SimpleNotificationService-….pem`
//!    (no user info, no other port). The certificate is fetched over TLS with the public web
//!    roots, without following redirects, and cached per URL; only an RSA key of a currently
//!    valid certificate is used.
//! 3. The string to sign is rebuilt from the documented fields, in byte order, each as
//!    `Name\nValue\n`: `Message, MessageId, Subject (if present), Timestamp, TopicArn, Type` for a
//!    notification; `Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type` for
//!    (un)subscribe confirmations.
//! 4. `SignatureVersion` 1 is SHA1withRSA, 2 is SHA256withRSA (PKCS#1 v1.5), checked with
//!    aws-lc-rs.
//!
//! A subscription is confirmed (its `SubscribeURL` visited, under the same host rule) only for
//! an allowed topic and a verified message.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

/// Largest certificate accepted.
const MAX_CERT_BYTES: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CERT_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The JSON document SNS posts to an HTTP(S) endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "TopicArn")]
    pub topic_arn: String,
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "SignatureVersion")]
    pub signature_version: String,
    #[serde(rename = "Signature")]
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
    #[serde(rename = "Token", default)]
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("topic {0} is not in events.sns_topics")]
    UnknownTopic(String),
    #[error("unknown message type '{0}'")]
    UnknownType(String),
    #[error("a {0} message without {1}")]
    Missing(String, &'static str),
    #[error("SignatureVersion '{0}' is not 1 or 2")]
    SignatureVersion(String),
    #[error("{0}")]
    CertUrl(String),
    #[error("the signing certificate cannot be used: {0}")]
    Cert(String),
    #[error("the signature does not match the message")]
    BadSignature,
}

/// `arn:aws:sns:<region>:<account>:<name>` → region.
pub fn topic_region(topic_arn: &str) -> Option<&str> {
    let rest = topic_arn.strip_prefix("arn:aws:sns:")?;
    let mut parts = rest.split(':');
    let (region, account, name) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = is_region(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && parts.next().is_none();
    ok.then_some(region)
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The documented field list, `Name\nValue\n` each, for `env`'s type.
pub fn string_to_sign(env: &Envelope) -> Result<String, VerifyError> {
    let mut out = String::new();
    let mut add = |name: &str, value: &str| {
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    };
    match env.kind.as_str() {
        "Notification" => {
            add("Message", &env.message);
            add("MessageId", &env.message_id);
            if let Some(subject) = &env.subject {
                add("Subject", subject);
            }
            add("Timestamp", &env.timestamp);
            add("TopicArn", &env.topic_arn);
            add("Type", &env.kind);
        }
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
            let missing = |what| VerifyError::Missing(env.kind.clone(), what);
            add("Message", &env.message);
            add("MessageId", &env.message_id);
            add(
                "SubscribeURL",
                env.subscribe_url
                    .as_deref()
                    .ok_or_else(|| missing("SubscribeURL"))?,
            );
            add("Timestamp", &env.timestamp);
            add(
                "Token",
                env.token.as_deref().ok_or_else(|| missing("Token"))?,
            );
            add("TopicArn", &env.topic_arn);
            add("Type", &env.kind);
        }
        other => return Err(VerifyError::UnknownType(other.to_string())),
    }
    Ok(out)
}

/// An SNS URL (certificate or subscribe URL) must be https on `sns.<region>.amazonaws.com`,
/// `region` being the topic's, with no user info and the default port.
pub fn check_sns_url(raw: &str, region: &str, what: &str) -> Result<reqwest::Url, VerifyError> {
    let bad = |why: &str| VerifyError::CertUrl(format!("{what} '{raw}' refused: {why}"));
    let url = reqwest::Url::parse(raw).map_err(|_| bad("not a URL"))?;
    if url.scheme() != "https" {
        return Err(bad("not https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it carries user info"));
    }
    if url.port().is_some() {
        return Err(bad("it names a port"));
    }
    let expected = format!("sns.{region}.amazonaws.com");
    if url.host_str() != Some(expected.as_str()) {
        return Err(bad(&format!("the host is not {expected}")));
    }
    Ok(url)
}

fn check_cert_url(raw: &str, region: &str) -> Result<reqwest::Url, VerifyError> {
    let url = check_sns_url(raw, region, "SigningCertURL")?;
    let path = url.path();
    if !path.starts_with("/SimpleNotificationService-") || !path.ends_with(".pem") {
        return Err(VerifyError::CertUrl(format!(
            "SigningCertURL '{raw}' refused: not an SNS signing certificate path"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(VerifyError::CertUrl(format!(
            "SigningCertURL '{raw}' refused: it has a query or fragment"
        )));
    }
    Ok(url)
}

/// The RSA public key (PKCS#1 DER) of a PEM certificate that is valid now.
pub fn rsa_key_of(pem: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| VerifyError::Cert(format!("not a PEM certificate ({e})")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| VerifyError::Cert(format!("not an X.509 certificate ({e})")))?;
    if !cert.validity().is_valid() {
        return Err(VerifyError::Cert("it is expired or not yet valid".into()));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(VerifyError::Cert("its key is not an RSA key".into()));
    }
    Ok(spki.subject_public_key.data.to_vec())
}

/// Check `signature` (base64) over `message` with an RSA key, for SignatureVersion `version`.
pub fn check_signature(
    key: &[u8],
    version: &str,
    message: &[u8],
    signature: &str,
) -> Result<(), VerifyError> {
    use aws_lc_rs::signature::{
        RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| VerifyError::BadSignature)?;
    let ok = match version {
        "1" => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, key)
            .verify(message, &signature),
        "2" => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key).verify(message, &signature),
        other => return Err(VerifyError::SignatureVersion(other.to_string())),
    };
    ok.map_err(|_| VerifyError::BadSignature)
}

/// Verifies SNS messages; keeps the signing keys it fetched.
pub struct Verifier {
    http: reqwest::Client,
    keys: moka::future::Cache<String, Arc<Vec<u8>>>,
    /// Tests only: fetch certificates and subscribe URLs from this origin instead of the
    /// (already checked) AWS host. Never set from configuration.
    origin_override: RwLock<Option<String>>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Verifier {
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .https_only(true)
                .build()
                .unwrap_or_default(),
            keys: moka::future::Cache::builder()
                .max_capacity(64)
                .time_to_live(CERT_CACHE_TTL)
                .build(),
            origin_override: RwLock::new(None),
        }
    }

    /// For tests: after a URL passed the rules above, fetch it from `origin` (e.g.
    /// `http://127.0.0.1:PORT`) instead of AWS. The rules themselves are unchanged.
    pub fn fetch_from_for_tests(&self, origin: &str) {
        if let Ok(mut o) = self.origin_override.write() {
            *o = Some(origin.trim_end_matches('/').to_string());
        }
    }

    fn client_and_url(&self, url: &reqwest::Url) -> (reqwest::Client, String) {
        let origin = self.origin_override.read().ok().and_then(|o| o.clone());
        match origin {
            Some(origin) => {
                let mut path = url.path().to_string();
                if let Some(q) = url.query() {
                    path.push('?');
                    path.push_str(q);
                }
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default();
                (client, format!("{origin}{path}"))
            }
            None => (self.http.clone(), url.to_string()),
        }
    }

    async fn key(&self, url: &reqwest::Url) -> Result<Arc<Vec<u8>>, VerifyError> {
        let cache_key = url.to_string();
        if let Some(k) = self.keys.get(&cache_key).await {
            return Ok(k);
        }
        let (client, target) = self.client_and_url(url);
        let fetch = |e: reqwest::Error| {
            VerifyError::Cert(format!("cannot fetch {cache_key}: {}", e.without_url()))
        };
        let resp = client.get(&target).send().await.map_err(fetch)?;
        if !resp.status().is_success() {
            return Err(VerifyError::Cert(format!(
                "{cache_key} answered {}",
                resp.status()
            )));
        }
        let bytes = resp.bytes().await.map_err(fetch)?;
        if bytes.len() > MAX_CERT_BYTES {
            return Err(VerifyError::Cert("the certificate is too large".into()));
        }
        let key = Arc::new(rsa_key_of(&bytes)?);
        self.keys.insert(cache_key, key.clone()).await;
        Ok(key)
    }

    /// Verify `env` for `allowed` topics. Nothing about the message may be trusted before this
    /// returns `Ok`.
    pub async fn verify(&self, env: &Envelope, allowed: &[String]) -> Result<(), VerifyError> {
        if !allowed.contains(&env.topic_arn) {
            return Err(VerifyError::UnknownTopic(env.topic_arn.clone()));
        }
        let region = topic_region(&env.topic_arn)
            .ok_or_else(|| VerifyError::UnknownTopic(env.topic_arn.clone()))?;
        if !matches!(env.signature_version.as_str(), "1" | "2") {
            return Err(VerifyError::SignatureVersion(env.signature_version.clone()));
        }
        let text = string_to_sign(env)?;
        let url = check_cert_url(&env.signing_cert_url, region)?;
        let key = self.key(&url).await?;
        check_signature(
            &key,
            &env.signature_version,
            text.as_bytes(),
            &env.signature,
        )
    }

    /// Confirm a verified subscription by visiting its `SubscribeURL` (same host rule).
    pub async fn confirm(&self, env: &Envelope) -> Result<(), String> {
        let region = topic_region(&env.topic_arn).ok_or("not an SNS topic")?;
        let raw = env.subscribe_url.as_deref().ok_or("no SubscribeURL")?;
        let url = check_sns_url(raw, region, "SubscribeURL").map_err(|e| e.to_string())?;
        let names_topic = url
            .query_pairs()
            .any(|(k, v)| k == "TopicArn" && v == env.topic_arn.as_str());
        let confirms = url
            .query_pairs()
            .any(|(k, v)| k == "Action" && v == "ConfirmSubscription");
        if !names_topic || !confirms {
            return Err("the SubscribeURL does not confirm this topic".into());
        }
        let (client, target) = self.client_and_url(&url);
        let resp = client
            .get(&target)
            .send()
            .await
            .map_err(|e| format!("cannot reach SNS: {}", e.without_url()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("SNS answered {}", resp.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kind: &str) -> Envelope {
        Envelope {
            kind: kind.into(),
            message_id: "4d4dc071-ddbf-465d-bba8-08f81c89da64".into(),
            topic_arn: "arn:aws:sns:us-east-2:123456789012:MyTopic".into(),
            subject: Some("My subject".into()),
            message: "My Test Message".into(),
            timestamp: "2012-06-05T04:37:04.321Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: Some(
                "https://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription".into(),
            ),
            token: Some("tok".into()),
        }
    }

    #[test]
    fn strings_to_sign_follow_the_documented_field_lists() {
        assert_eq!(
            string_to_sign(&env("Notification")).expect("n"),
            "Message\nMy Test Message\nMessageId\n4d4dc071-ddbf-465d-bba8-08f81c89da64\n\
             Subject\nMy subject\nTimestamp\n2012-06-05T04:37:04.321Z\n\
             TopicArn\narn:aws:sns:us-east-2:123456789012:MyTopic\nType\nNotification\n"
        );
        let mut no_subject = env("Notification");
        no_subject.subject = None;
        assert!(!string_to_sign(&no_subject).expect("n").contains("Subject"));
        let confirm = string_to_sign(&env("SubscriptionConfirmation")).expect("c");
        assert!(confirm.starts_with("Message\nMy Test Message\nMessageId\n"));
        assert!(confirm.contains(
            "SubscribeURL\nhttps://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription\n\
             Timestamp\n2012-06-05T04:37:04.321Z\nToken\ntok\nTopicArn\n"
        ));
        assert!(confirm.ends_with("Type\nSubscriptionConfirmation\n"));
        let mut no_token = env("UnsubscribeConfirmation");
        no_token.token = None;
        assert!(string_to_sign(&no_token).is_err());
        assert!(string_to_sign(&env("Other")).is_err());
    }

    #[test]
    fn certificate_urls_are_https_on_the_topics_sns_host_only() {
        let good = "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem";
        assert!(check_cert_url(good, "us-east-2").is_ok());
        for bad in [
            "http://sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-2.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
            "https://evil.example/sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://x@sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-2.amazonaws.com:8443/SimpleNotificationService-abc.pem",
            "https://sns.us-east-2.amazonaws.com/other.pem",
            "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
            "not a url",
        ] {
            assert!(check_cert_url(bad, "us-east-2").is_err(), "{bad}");
        }
        assert_eq!(
            topic_region("arn:aws:sns:eu-west-1:123456789012:t"),
            Some("eu-west-1")
        );
        assert_eq!(topic_region("arn:aws:sns:eu-west-1:1234:t"), None);
        assert_eq!(topic_region("arn:aws:sqs:eu-west-1:123456789012:t"), None);
    }
}
