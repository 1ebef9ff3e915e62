//! Logging in and out.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use uuid::Uuid;

use super::accounts::normalise_email;
use super::extract::{ApiJson, ClientIp, SessionCaller, CSRF_COOKIE, SESSION_COOKIE};
use super::types::{time_text, LoginRequest, SessionCreated};
use super::{AppState, SESSION_IDLE, SESSION_LIFETIME};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::model::Session;
use crate::tokens::{issue, TokenKind};

fn cookie_header(
    state: &AppState,
    name: &str,
    value: &str,
    http_only: bool,
    max_age: i64,
) -> ApiResult<HeaderValue> {
    let mut cookie = format!("{name}={value}; Path=/; SameSite=Strict; Max-Age={max_age}");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if state.secure_cookies {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).map_err(ApiError::internal)
}

/// Log in with an Online ID.
///
/// Answers the session token, also set as the `HttpOnly` cookie
/// `od_session`, and the CSRF token (also the cookie `od_csrf`). An unknown
/// address and a wrong password get the same answer, in the same time.
#[utoipa::path(
    post, path = "/api/v1/sessions", tag = "Online ID",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = SessionCreated,
         headers(("Set-Cookie" = String, description = "od_session (HttpOnly) and od_csrf"))),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`not_verified`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with Retry-After", body = ErrorBody),
    )
)]
pub async fn log_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let valid_email = normalise_email(&request.email);
    // Throttle by what was typed even when it is not an address, so that a
    // malformed address is no way around the limit.
    let email = valid_email
        .clone()
        .unwrap_or_else(|| request.email.trim().to_lowercase());
    let throttle = state.throttle();
    throttle.check_login(&email, &ip).await?;
    let found = match &valid_email {
        Some(email) => state.store.account_by_email(email).await?,
        None => None,
    };
    let stored = found
        .as_ref()
        .and_then(|login| login.password_hash.as_ref())
        .map(|hash| hash.expose().to_owned());
    let matches = state.passwords.verify(&request.password, stored).await?;
    let Some(login) = found.filter(|_| matches) else {
        throttle.login_failed(&email, &ip).await?;
        // No address in the log: people type passwords into the wrong field.
        tracing::info!(client = %ip, "login failed");
        return Err(ErrorCode::InvalidCredentials.into());
    };
    if !login.account.verified {
        return Err(ErrorCode::NotVerified.into());
    }
    throttle.clear_account(&email).await?;

    let now = state.now();
    let token = issue(TokenKind::Session)?;
    let csrf = issue(TokenKind::Csrf)?;
    let session = Session {
        id: Uuid::new_v4(),
        account_id: login.account.id,
        token_hash: token.hash.clone(),
        csrf_hash: csrf.hash.clone(),
        created_at: now,
        last_used_at: now,
        expires_at: now + SESSION_LIFETIME,
    };
    state.store.insert_session(&session).await?;
    tracing::info!(account = %login.account.id, session = %token.hash.short(), "logged in");

    let max_age = SESSION_LIFETIME.num_seconds();
    let mut headers = HeaderMap::new();
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, token.secret.expose(), true, max_age)?,
    );
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, CSRF_COOKIE, csrf.secret.expose(), false, max_age)?,
    );
    let body = SessionCreated {
        token: token.secret.expose().to_owned(),
        csrf_token: csrf.secret.expose().to_owned(),
        expires_at: time_text((now + SESSION_IDLE).min(session.expires_at)),
        account: (&login.account).into(),
    };
    Ok((StatusCode::OK, headers, Json(body)).into_response())
}

/// Log out: end this session.
#[utoipa::path(
    delete, path = "/api/v1/sessions/current", tag = "Online ID",
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 204, description = "Logged out; the cookies are cleared"),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`csrf_failed`", body = ErrorBody),
    )
)]
pub async fn log_out(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
) -> ApiResult<Response> {
    state.store.delete_session(auth.session.id).await?;
    tracing::info!(account = %auth.account.id, session = %auth.session.token_hash.short(), "logged out");
    let mut headers = HeaderMap::new();
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, "", true, 0)?,
    );
    headers.append(
        header::SET_COOKIE,
        cookie_header(&state, CSRF_COOKIE, "", false, 0)?,
    );
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
