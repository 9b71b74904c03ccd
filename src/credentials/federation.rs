//! AWS console sign-in through the federation endpoint (`aws.federation_url`): exchange the
//! temporary credentials for a sign-in token, then send the browser to the login URL. Neither the
//! token nor the URL is ever logged.

use std::time::Duration;

use crate::app::App;
use crate::cloud::RoleCredentials;
use crate::error::AppError;

/// Where the console opens when no `redirect` is given.
pub const DEFAULT_DESTINATION: &str = "https://console.aws.amazon.com/";

/// `redirect` must be the AWS console: `https://console.aws.amazon.com/...` or a region's
/// `https://{region}.console.aws.amazon.com/...`. Anything else is refused (no open redirect).
pub fn destination(redirect: Option<&str>) -> Result<String, AppError> {
    let Some(raw) = redirect.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(DEFAULT_DESTINATION.to_string());
    };
    let refuse = || {
        AppError::BadRequest(format!(
            "redirect must be an AWS console address (https://console.aws.amazon.com/... or \
             https://<region>.console.aws.amazon.com/...), not '{raw}'"
        ))
    };
    let url = reqwest::Url::parse(raw).map_err(|_| refuse())?;
    let host = url.host_str().unwrap_or_default();
    let region_ok = host
        .strip_suffix(".console.aws.amazon.com")
        .is_some_and(|region| {
            !region.is_empty()
                && region.len() <= 32
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    let ok = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && (host == "console.aws.amazon.com" || region_ok);
    if ok {
        Ok(url.to_string())
    } else {
        Err(refuse())
    }
}

fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

#[derive(serde::Deserialize)]
struct SigninToken {
    #[serde(rename = "SigninToken")]
    signin_token: String,
}

/// The console login URL for `creds`, opening `destination`.
pub async fn login_url(
    app: &App,
    creds: &RoleCredentials,
    destination: &str,
) -> Result<String, AppError> {
    let endpoint = app.config.aws.federation_url.trim_end_matches('?');
    let session = serde_json::json!({
        "sessionId": creds.access_key_id,
        "sessionKey": creds.secret_access_key,
        "sessionToken": creds.session_token,
    })
    .to_string();
    let mut token_url = reqwest::Url::parse(endpoint)
        .map_err(|e| AppError::Internal(format!("aws.federation_url is not a URL: {e}")))?;
    token_url
        .query_pairs_mut()
        .append_pair("Action", "getSigninToken")
        .append_pair("Session", &session);
    let resp = http().get(token_url).send().await.map_err(|e| {
        AppError::Upstream(format!(
            "the AWS federation endpoint cannot be reached: {}",
            e.without_url()
        ))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(AppError::Upstream(format!(
            "the AWS federation endpoint refused the sign-in ({status})"
        )));
    }
    let token: SigninToken = resp.json().await.map_err(|_| {
        AppError::Upstream("the AWS federation endpoint answered without a SigninToken".into())
    })?;
    let mut login = reqwest::Url::parse(endpoint)
        .map_err(|e| AppError::Internal(format!("aws.federation_url is not a URL: {e}")))?;
    login
        .query_pairs_mut()
        .append_pair("Action", "login")
        .append_pair("Issuer", &app.config.url)
        .append_pair("Destination", destination)
        .append_pair("SigninToken", &token.signin_token);
    Ok(login.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_destinations_are_allowed() {
        assert_eq!(destination(None).ok().as_deref(), Some(DEFAULT_DESTINATION));
        assert_eq!(
            destination(Some("  ")).ok().as_deref(),
            Some(DEFAULT_DESTINATION)
        );
        for ok in [
            "https://console.aws.amazon.com/s3/home",
            "https://us-west-2.console.aws.amazon.com/lambda/home?region=us-west-2#/functions",
            "https://eu-central-1.console.aws.amazon.com/",
        ] {
            assert!(destination(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "http://console.aws.amazon.com/",
            "https://console.aws.amazon.com.evil.com/",
            "https://evil.com/?https://console.aws.amazon.com/",
            "https://user@console.aws.amazon.com/",
            "https://console.aws.amazon.com:8443/",
            "https://a.b.console.aws.amazon.com/",
            "https://.console.aws.amazon.com/",
            "javascript:alert(1)",
            "//console.aws.amazon.com/",
            "/admin",
        ] {
            assert!(destination(Some(bad)).is_err(), "{bad}");
        }
    }
}
