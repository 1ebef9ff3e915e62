//! API v1 (docs/ONLINE_API.md): the router, the shared state, and the
//! OpenAPI description generated from the handlers.

pub mod accounts;
pub mod companies;
pub mod devices;
pub mod extract;
pub mod me;
pub mod records;
pub mod sessions;
pub mod sync;
pub mod types;

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use od_licence::TrustedKeys;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::clock::Clock;
use crate::error::{ApiError, ErrorCode};
use crate::mail::{Mailer, OutgoingMail};
use crate::pages;
use crate::password::Passwords;
use crate::store::Store;
use crate::throttle::{Limits, Throttle};
use types::Health;

/// A session ends 12 hours after its last use...
pub const SESSION_IDLE: Duration = Duration::hours(12);
/// ... and 30 days after the login at the latest.
pub const SESSION_LIFETIME: Duration = Duration::days(30);
/// How stale a session's "last used" may get before it is written again
/// (saves a write on every request).
pub const SESSION_TOUCH_INTERVAL: Duration = Duration::minutes(1);
/// How recent the login must be for what changes a company's connection:
/// disconnect, undo a registration, Change user, move the sync computer,
/// register a computer (PRODUCT.md §5.8: "after logging in with the Online
/// ID"). An older session is refused with `reauthentication_required`
/// (401): a session left open (a web cookie, days old) cannot do these.
/// The error message says "10 minutes": change both together.
pub const RECENT_LOGIN: Duration = Duration::minutes(10);
pub const VERIFY_LINK_LIFETIME: Duration = Duration::hours(24);
pub const RESET_LINK_LIFETIME: Duration = Duration::hours(1);
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::hours(1);
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::days(180);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub passwords: Passwords,
    pub mailer: Mailer,
    pub limits: Limits,
    /// Without a trailing slash.
    pub public_url: String,
    /// Whether cookies get `Secure` (and responses HSTS): served over
    /// HTTPS, directly or behind a proxy (`https` public URL).
    pub secure_cookies: bool,
    pub trusted_keys: TrustedKeys,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Wakes long-polling pulls when a company's data changes.
    pub sync_events: sync::SyncEvents,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.inner
    }
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState {
            inner: Arc::new(shared),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn throttle(&self) -> Throttle<'_> {
        Throttle {
            store: self.store.as_ref(),
            limits: &self.limits,
            now: self.now(),
        }
    }

    /// Sends in the background, so that the answer takes as long whether
    /// or not a mail goes out (and a slow mail server slows nobody down).
    pub fn send_mail_later(&self, mail: OutgoingMail) {
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(error) = mailer.send(&mail).await {
                tracing::error!(to = %mail.to, %error, "a mail could not be sent");
            }
        });
    }
}

/// Service health: what the plugin's reachability check asks.
#[utoipa::path(
    get, path = "/api/v1/health", tag = "Service",
    responses((status = 200, body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// This description.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "Service",
    responses((status = 200, description = "The OpenAPI 3.1 description of API v1", content_type = "application/json"))
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`ods_…` session token, or `oda_…` device access token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "od_session",
                "Session cookie; state changes also need the X-CSRF-Token header",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Online Desktop online service",
        version = "1",
        description = "API v1 of the Online Desktop online service; see docs/ONLINE_API.md. \
                       Every error answers `{\"error\": {\"code\", \"message\"}}` (schema ErrorBody)."
    ),
    paths(
        health,
        openapi_json,
        accounts::sign_up,
        accounts::verify,
        accounts::password_reset,
        accounts::password_reset_confirm,
        sessions::log_in,
        sessions::log_out,
        me::get_me,
        me::patch_me,
        me::change_password,
        companies::register,
        companies::list,
        companies::get,
        companies::disconnect,
        companies::change_connected_by,
        companies::unregister,
        devices::create,
        devices::list,
        devices::revoke,
        devices::refresh,
        devices::current,
        devices::revoke_current,
        sync::put_schema,
        sync::get_schema,
        sync::lease,
        sync::push,
        sync::changes,
        sync::ack,
        sync::status,
        sync::records,
        sync::checksum,
        sync::put_host_marker,
        records::move_sync_computer,
        records::company_schema,
        records::conflicts,
        records::list,
        records::create,
        records::get,
        records::patch,
        records::delete,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "Service", description = "Health and this description"),
        (name = "Online ID", description = "Sign-up, verification, login, profile, passwords"),
        (name = "Companies", description = "Company registration (connect)"),
        (name = "Devices", description = "The plugin on the sync computer"),
        (name = "Sync", description = "Synchronisation with the sync computer (docs/SYNC_PROTOCOL.md)"),
        (name = "Records", description = "The online copy of the company's data, for the web desktop"),
    )
)]
pub struct ApiDoc;

/// The description as committed in `online/openapi.json`.
pub fn openapi_text() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    text.push('\n');
    text
}

/// One line per request: method, route (the template, never the query or
/// ids that could be tokens sent by mistake), status, duration.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let millis = started.elapsed().as_millis() as u64;
    if status >= 500 {
        tracing::warn!(%method, %route, status, millis, "request failed");
    } else {
        tracing::info!(%method, %route, status, millis, "request");
    }
    response
}

/// Headers every answer gets.
async fn harden(State(https): State<bool>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

async fn not_found(request: Request) -> ApiError {
    tracing::debug!(method = %request.method(), "no such route");
    ErrorCode::NotFound.into()
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        ApiError::new(ErrorCode::MethodNotAllowed),
    )
}

/// The whole service: API, pages, and the layers around them.
pub fn router(state: AppState) -> Router {
    let https = state.secure_cookies;
    let body_limit = state.limits.body_limit;
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/accounts", post(accounts::sign_up))
        .route("/api/v1/accounts/verify", post(accounts::verify))
        .route(
            "/api/v1/accounts/password-reset",
            post(accounts::password_reset),
        )
        .route(
            "/api/v1/accounts/password-reset/confirm",
            post(accounts::password_reset_confirm),
        )
        .route("/api/v1/sessions", post(sessions::log_in))
        .route("/api/v1/sessions/current", delete(sessions::log_out))
        .route("/api/v1/me", get(me::get_me).patch(me::patch_me))
        .route("/api/v1/me/password", post(me::change_password))
        .route(
            "/api/v1/companies",
            post(companies::register).get(companies::list),
        )
        .route(
            "/api/v1/companies/{id}",
            get(companies::get).delete(companies::unregister),
        )
        .route(
            "/api/v1/companies/{id}/disconnect",
            post(companies::disconnect),
        )
        .route(
            "/api/v1/companies/{id}/connected-by",
            post(companies::change_connected_by),
        )
        .route(
            "/api/v1/companies/{id}/devices",
            post(devices::create).get(devices::list),
        )
        .route(
            "/api/v1/companies/{id}/devices/{device_id}",
            delete(devices::revoke),
        )
        .route("/api/v1/devices/refresh", post(devices::refresh))
        .route(
            "/api/v1/devices/current",
            get(devices::current).delete(devices::revoke_current),
        )
        .route(
            "/api/v1/sync/schema",
            axum::routing::put(sync::put_schema).get(sync::get_schema),
        )
        .route("/api/v1/sync/lease", post(sync::lease))
        .route("/api/v1/sync/push", post(sync::push))
        .route("/api/v1/sync/changes", get(sync::changes))
        .route("/api/v1/sync/ack", post(sync::ack))
        .route("/api/v1/sync/status", get(sync::status))
        .route("/api/v1/sync/records", get(sync::records))
        .route("/api/v1/sync/checksum", get(sync::checksum))
        .route(
            "/api/v1/sync/host",
            axum::routing::put(sync::put_host_marker),
        )
        .route(
            "/api/v1/companies/{id}/sync-computer",
            post(records::move_sync_computer),
        )
        .route(
            "/api/v1/companies/{id}/sync/schema",
            get(records::company_schema),
        )
        .route(
            "/api/v1/companies/{id}/sync/conflicts",
            get(records::conflicts),
        )
        .route(
            "/api/v1/companies/{id}/records/{entity}",
            get(records::list).post(records::create),
        )
        .route(
            "/api/v1/companies/{id}/records/{entity}/{global_id}",
            get(records::get)
                .patch(records::patch)
                .delete(records::delete),
        )
        .route("/verify", get(pages::verify))
        .route("/reset", get(pages::reset))
        .route("/login", get(pages::login))
        .route_layer(middleware::from_fn(log_request))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(https, harden))
        .with_state(state)
}
