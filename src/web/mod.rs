//! HTTP layer: one router listing every route ([`router`]), the middleware stack, and
//! [`serve`] with graceful shutdown.

mod api;
mod assets;
pub mod client;
mod credentials;
pub mod csrf;
mod demo;
mod errors;
mod events;
mod extract;
mod flash;
mod forms;
pub mod identity;
mod jsonview;
mod legacy;
mod loading;
mod metrics;
pub mod openapi;
mod pages;
mod prefs;
mod request_page;
mod resources;
mod rightsize;
pub mod scopes;
mod security;
mod selfservice;
mod service_resources;
mod signout;
mod tokens;
mod view;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

/// Largest request body accepted; bigger ones get 413 before any handler runs.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A request still running after this gets 503 (slow backends must not pile up connections).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Every route of the portal, in one list: [`router`] serves it, and the fuzz test
/// (`tests/it/fuzz.rs`) sends malformed input to each path in it.
pub struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            paths: vec![],
        }
    }

    fn route(mut self, path: &'static str, methods: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, methods);
        self.paths.push(path);
        self
    }

    /// The route paths, with their `{param}` placeholders.
    pub fn paths(&self) -> &[&'static str] {
        &self.paths
    }
}

/// Routes served outside the sign-in and CSRF layers, added by [`router`] after them (with
/// [`routes`] they make up every route).
pub const UNSIGNED_ROUTES: &[&str] = &["/api/v2/events/sns"];

pub fn routes() -> Routes {
    Routes::new()
        // Pages
        .route("/", get(pages::home))
        .route("/requests", get(pages::requests))
        .route("/policies/request/{id}", get(request_page::request_detail))
        .route("/policies", get(resources::policies_page))
        .route(
            "/policies/edit/{account_id}/iamrole/{role_name}",
            get(resources::role_page),
        )
        .route(
            "/policies/edit/{account_id}/iamrole/{role_name}/refresh",
            post(resources::refresh_role),
        )
        .route(
            "/policies/edit/{account_id}/iamrole/{role_name}/request",
            post(resources::request_change),
        )
        // ConsoleMe's other page URLs (bookmarks, old mails)
        .route(
            "/policies/edit/{account_id}/{kind}/{*rest}",
            get(service_resources::resource_page).post(service_resources::request_change),
        )
        .route("/create_role", get(legacy::create_role))
        .route(
            "/selfservice",
            get(selfservice::wizard).post(selfservice::wizard_post),
        )
        .route("/api/v2/selfservice/preview", post(selfservice::preview))
        .route("/api/v2/selfservice/roles", get(selfservice::role_picker))
        .route(
            "/api/v2/selfservice/templates",
            get(selfservice::template_list),
        )
        .route("/roles", get(credentials::roles_page))
        .route(
            "/roles/credentials",
            get(credentials::credentials_shown).post(credentials::credentials_page),
        )
        .route(
            "/api/v2/eligible_roles",
            get(credentials::api_eligible_roles),
        )
        .route(
            "/role/{*arn}",
            get(credentials::console).post(credentials::console_confirmed),
        )
        .route("/profile", get(credentials::profile))
        .route("/profile/tokens", post(credentials::create_token))
        .route(
            "/profile/tokens/{id}/revoke",
            get(credentials::revoke_confirm).post(credentials::revoke_token),
        )
        .route("/api/v2/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v2/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/api/v2/credentials", post(credentials::api_credentials))
        .route("/api/v2/console_url", get(credentials::api_console_url))
        .route("/admin/audit", get(pages::audit))
        .route("/admin/audit.jsonl", get(pages::audit_export))
        .route("/admin/outbox", get(pages::outbox))
        .route("/admin/outbox/{id}/retry", post(pages::retry_outbox))
        .route("/admin/accounts", get(resources::accounts_page))
        .route("/admin/findings", get(events::findings_page))
        // JSON API (ConsoleMe v2 shapes)
        .route("/api/v2/requests", get(api::list_requests))
        .route("/api/v2/request", post(api::create_request))
        .route(
            "/api/v2/requests/{id}",
            get(api::get_request).put(api::modify_request),
        )
        .route(
            "/policies/request/{id}/act",
            post(request_page::act_on_request),
        )
        .route("/api/v2/policies", get(resources::api_policies))
        .route(
            "/api/v2/typeahead/self_service_resources",
            get(service_resources::typeahead),
        )
        .route(
            "/api/v2/typeahead/resources",
            get(service_resources::typeahead_legacy),
        )
        .route(
            "/api/v2/resources/{account_id}/{service}/{*rest}",
            get(service_resources::api_resource),
        )
        .route(
            "/api/v2/roles/{account_id}/{role_name}",
            get(resources::api_role),
        )
        .route(
            "/api/v2/roles/{account_id}/{role_name}/denies",
            get(events::api_denies),
        )
        // Right-sizing (src/rightsize/)
        .route("/rightsize", get(rightsize::fleet_page))
        .route(
            "/policies/edit/{account_id}/iamrole/{role_name}/rightsize",
            post(rightsize::propose_form),
        )
        .route("/rightsize/{id}/rollback", post(rightsize::rollback_form))
        .route("/api/v2/rightsize", get(rightsize::api_fleet))
        .route(
            "/api/v2/roles/{account_id}/{role_name}/rightsize",
            get(rightsize::api_report).post(rightsize::api_propose),
        )
        .route(
            "/api/v2/rightsize/{id}/rollback",
            post(rightsize::api_rollback),
        )
        // Health and assets
        .route("/healthcheck", get(api::healthcheck))
        .route("/readyz", get(api::readyz))
        .route("/static/{*path}", get(assets::serve))
        .route("/api/v2/user", get(api::current_user))
        .route("/api/v2/openapi.json", get(openapi::document))
        .route("/logout", get(signout::page).post(signout::sign_out))
        .route("/demo/persona", post(demo::switch))
        .route("/preferences/theme", post(prefs::theme))
}

/// The portal: [`routes`] behind the middleware stack.
pub fn router(state: AppState) -> Router {
    let routes = routes()
        .router
        // Only on matched routes: unknown paths and methods get their 404/405 first. The last
        // layer added runs first: client address, Origin check, sign-in, CSRF token.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::protect,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            identity::authenticate,
        ))
        .route_layer(csrf::origin_layer(&state.config))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client::resolve,
        ))
        // Added after the layers above on purpose: SNS has neither a session nor a CSRF token;
        // its signature is verified instead (src/events/sns.rs), before anything is read.
        .route(UNSIGNED_ROUTES[0], post(events::sns_endpoint))
        .fallback(errors::not_found)
        .with_state(state.clone());

    let trace = TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
        let request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        // The path only, never the query string: it may carry search terms or cursors.
        tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id)
    })
    .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
    // A 5xx is not by itself an error worth a page: readiness answers 503 while the synced
    // accounts load (src/web/loading.rs) and throttling answers 503 (src/error.rs). A real
    // internal error is logged at ERROR, with its cause, by `AppError` (src/error.rs).
    .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN));

    routes.layer(
        ServiceBuilder::new()
            // Outermost: sees the final status (errors rendered, panics caught, timeouts) and
            // the whole latency. A no-op unless `metrics.listen` installed a recorder.
            .layer(axum::middleware::from_fn(metrics::record))
            .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
            .layer(trace)
            .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
            .layer(axum::middleware::from_fn(security::headers))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                errors::render,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state,
                loading::until_loaded,
            ))
            .layer(CatchPanicLayer::custom(errors::panic_response))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                REQUEST_TIMEOUT,
            ))
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES)),
    )
}

/// Serve until `shutdown` resolves, then finish in-flight requests. Each connection's peer
/// address reaches the handlers (`ConnectInfo`), for [`client`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
