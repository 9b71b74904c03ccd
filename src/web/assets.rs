//! Static assets, embedded in the binary so a single file deploys the whole portal.
//!
//! Pages link each asset by a name carrying a hash of its content (`/static/app.3f9c0a1b2c.css`,
//! [`url`]): that URL never changes meaning, so browsers may keep it for a year without asking
//! again, and a new release changes the name. The plain name (`/static/app.css`) still answers,
//! with a short lifetime, for anything that linked it by hand.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::AppError;

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
    /// `app.<hash>.css`
    hashed: String,
    /// `/static/app.<hash>.css`
    url: String,
}

const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
    (
        "selfservice.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/selfservice.js"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, mime, body)| {
            let digest = Sha256::digest(body.as_bytes());
            let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
            let hashed = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{name}.{hash}"),
            };
            Asset {
                name,
                mime,
                body,
                url: format!("/static/{hashed}"),
                hashed,
            }
        })
        .collect()
});

/// The content-hashed URL of an embedded asset (`app.css` → `/static/app.<hash>.css`).
pub fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.url.as_str())
        .unwrap_or("/static/missing")
}

/// A year: the hashed name changes whenever the content does.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHORT: &str = "public, max-age=300";

pub async fn serve(Path(path): Path<String>) -> Result<Response, AppError> {
    let (asset, cache) = if let Some(a) = ASSETS.iter().find(|a| a.hashed == path) {
        (a, IMMUTABLE)
    } else if let Some(a) = ASSETS.iter().find(|a| a.name == path) {
        (a, SHORT)
    } else {
        return Err(AppError::NotFound(format!(
            "there is no asset named '{path}'"
        )));
    };
    let mut resp = asset.body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_urls_name_the_content() {
        let css = url("app.css");
        assert!(
            css.starts_with("/static/app.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/static/app.0123456789.css".len(), "{css}");
        assert_eq!(url("nope.css"), "/static/missing");
    }
}
