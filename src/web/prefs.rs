//! Display preferences: the colour theme (`POST /preferences/theme`, the footer's form).
//!
//! A plain cookie read when pages are rendered ([`super::view::theme_of`]); it changes nothing
//! but colours. Like every form it is CSRF-checked, so another site cannot flip it.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::view::THEME_COOKIE;
use crate::app::AppState;
use crate::error::AppError;

/// A year.
const MAX_AGE: u32 = 365 * 24 * 3600;

#[derive(Debug, Deserialize)]
pub struct ThemeForm {
    #[serde(default)]
    theme: String,
    #[serde(default)]
    next: String,
}

pub async fn theme(
    State(state): State<AppState>,
    Form(form): Form<ThemeForm>,
) -> Result<Response, AppError> {
    let theme = match form.theme.trim() {
        t @ ("light" | "dark") => t,
        "auto" | "" => "",
        other => {
            return Err(AppError::BadRequest(format!(
                "theme '{other}' is not one of auto, light, dark"
            )));
        }
    };
    let next = super::demo::local_path(&form.next).unwrap_or("/");
    let secure = super::identity::secure_attr(&state.config);
    let cookie = if theme.is_empty() {
        format!("{THEME_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
    } else {
        format!("{THEME_COOKIE}={theme}; Path=/; HttpOnly; SameSite=Lax; Max-Age={MAX_AGE}{secure}")
    };
    let mut resp = Redirect::to(next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}
