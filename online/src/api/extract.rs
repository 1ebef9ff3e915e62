//! Request extractors: JSON bodies with the API's error shape, the client's
//! address, and who is calling (session or device).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::serve::IncomingStream;
use serde::de::DeserializeOwned;

use super::{AppState, RECENT_LOGIN, SESSION_IDLE, SESSION_TOUCH_INTERVAL};
use crate::error::{ApiError, ErrorCode};
use crate::model::{Account, Device, DeviceTokenKind, Session};
use crate::tls::TlsListener;
use crate::tokens::{constant_time_eq, TokenHash, TokenKind};

/// The session cookie (`HttpOnly`).
pub const SESSION_COOKIE: &str = "od_session";
/// The CSRF cookie, readable by the page's script (double-submit).
pub const CSRF_COOKIE: &str = "od_csrf";
/// The header a cookie-authenticated state change must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON request body. Refuses other content types (415), bodies over the
/// limit (413) and JSON that does not fit (400), all in the API's shape.
/// Requiring `application/json` also stops cross-site HTML forms, which
/// cannot send it without the browser asking first.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::with_message(
                        ErrorCode::BodyTooLarge,
                        format!(
                            "The request is too large: at most {} KiB are accepted.",
                            state.limits.body_limit / 1024
                        ),
                    )
                } else {
                    ApiError::new(ErrorCode::InvalidRequest)
                }
            })?;
        if !is_json {
            return Err(ErrorCode::UnsupportedMediaType.into());
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|error| ApiError::with_message(ErrorCode::InvalidRequest, describe(&error)))
    }
}

/// serde's messages can quote the offending value (a password sent as a
/// number, say); only "missing field" ones are passed on as they are.
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match error.classify() {
        serde_json::error::Category::Data if text.starts_with("missing field") => {
            let field = text.split('`').nth(1).unwrap_or("?");
            format!("The request is not valid: the field \"{field}\" is missing.")
        }
        serde_json::error::Category::Data => {
            "The request is not valid: a field is missing or has the wrong type.".to_owned()
        }
        _ => "The request is not valid JSON.".to_owned(),
    }
}

/// The client's address, from the connection.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// The client's IP address as text, for throttling ("unknown" when the
/// request did not come through a listener, as in router unit tests).
///
/// Behind a reverse proxy every request comes from the proxy, so throttling
/// per IP would throttle everyone together. When the connection comes from a
/// trusted proxy (`--trusted-proxy`), the client is the right-most address
/// in `X-Forwarded-For` that is not a trusted proxy itself: what a client
/// writes into the header on its own stands further left and is ignored.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts
            .extensions
            .get::<ConnectInfo<ClientAddr>>()
            .map(|info| info.0 .0.ip())
        else {
            return Ok(ClientIp("unknown".to_owned()));
        };
        Ok(ClientIp(
            forwarded_client(peer, &parts.headers, &state.trusted_proxies).to_string(),
        ))
    }
}

/// The client behind `peer`, per the rule of [`ClientIp`].
pub fn forwarded_client(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage: trust nothing further left.
            Err(_) => return client,
        }
    }
    client
}

/// An Online ID's session.
#[derive(Clone, Debug)]
pub struct SessionAuth {
    pub session: Session,
    pub account: Account,
}

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Caller {
    Session(SessionAuth),
    Device(Device),
}

fn bearer(parts: &Parts) -> Option<Result<&str, ApiError>> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    Some(token.ok_or_else(|| ApiError::new(ErrorCode::TokenInvalid)))
}

/// The value of cookie `name`.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn session_for(state: &AppState, token: &str) -> Result<SessionAuth, ApiError> {
    let now = state.now();
    let hash = TokenHash::of(token);
    let session = state
        .store
        .session_by_token(&hash)
        .await?
        .ok_or(ErrorCode::TokenInvalid)?;
    if now >= session.expires_at || now >= session.last_used_at + SESSION_IDLE {
        state.store.delete_session(session.id).await?;
        tracing::debug!(session = %hash.short(), "expired session refused");
        return Err(ErrorCode::TokenInvalid.into());
    }
    let account = state
        .store
        .account_by_id(session.account_id)
        .await?
        .ok_or(ErrorCode::TokenInvalid)?;
    if now - session.last_used_at >= SESSION_TOUCH_INTERVAL {
        state.store.touch_session(session.id, now).await?;
    }
    Ok(SessionAuth { session, account })
}

pub(super) async fn device_for(state: &AppState, token: &str) -> Result<Device, ApiError> {
    let now = state.now();
    let (token, device) = state
        .store
        .device_token(&TokenHash::of(token))
        .await?
        .ok_or(ErrorCode::TokenInvalid)?;
    if token.kind != DeviceTokenKind::Access
        || token.expires_at <= now
        || device.revoked_at.is_some()
    {
        tracing::debug!(device = %device.id, "expired or revoked device token refused");
        return Err(ErrorCode::TokenInvalid.into());
    }
    Ok(device)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(parts) {
            let token = token?;
            return if token.starts_with(TokenKind::Session.prefix()) {
                session_for(state, token).await.map(Caller::Session)
            } else if token.starts_with(TokenKind::DeviceAccess.prefix()) {
                device_for(state, token).await.map(Caller::Device)
            } else {
                Err(ErrorCode::TokenInvalid.into())
            };
        }
        let token = cookie(parts, SESSION_COOKIE).ok_or(ErrorCode::AuthenticationRequired)?;
        let auth = session_for(state, token).await?;
        if changes_state(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(TokenHash::of);
            let matches = sent.is_some_and(|sent| {
                constant_time_eq(
                    sent.as_str().as_bytes(),
                    auth.session.csrf_hash.as_str().as_bytes(),
                )
            });
            if !matches {
                tracing::warn!(
                    method = %parts.method,
                    path = %parts.uri.path(),
                    "cookie-authenticated request without a valid CSRF token refused"
                );
                return Err(ErrorCode::CsrfFailed.into());
            }
        }
        Ok(Caller::Session(auth))
    }
}

/// A caller that must be an Online ID's session.
pub struct SessionCaller(pub SessionAuth);

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Session(auth) => Ok(SessionCaller(auth)),
            Caller::Device(_) => Err(ApiError::with_message(
                ErrorCode::Forbidden,
                "This needs a login with an Online ID, not a device token.",
            )),
        }
    }
}

/// A caller that must be an Online ID's session created by a login at most
/// [`RECENT_LOGIN`] ago: for what changes a company's connection. An older
/// (but valid) session gets `reauthentication_required` (401), before
/// anything else is looked at, so nothing changes.
pub struct RecentSessionCaller(pub SessionAuth);

impl FromRequestParts<AppState> for RecentSessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let SessionCaller(auth) = SessionCaller::from_request_parts(parts, state).await?;
        // In whole seconds: the store keeps microseconds, the clock more.
        let age = state.now() - auth.session.created_at;
        if age.num_seconds() > RECENT_LOGIN.num_seconds() {
            tracing::info!(
                method = %parts.method,
                path = %parts.uri.path(),
                account = %auth.account.id,
                "request needing a recent login refused: the session is older"
            );
            return Err(ErrorCode::ReauthenticationRequired.into());
        }
        Ok(RecentSessionCaller(auth))
    }
}

/// A caller that must be a device.
pub struct DeviceCaller(pub Device);

impl FromRequestParts<AppState> for DeviceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Device(device) => Ok(DeviceCaller(device)),
            Caller::Session(_) => Err(ApiError::with_message(
                ErrorCode::Forbidden,
                "This needs a device token.",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("an address");
        let proxy = ip("10.0.0.1");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.1.1.1, 2.2.2.2".parse().expect("a value"),
        );
        headers.append("x-forwarded-for", "10.0.0.2".parse().expect("a value"));
        let trusted = [proxy, ip("10.0.0.2")];
        assert_eq!(
            forwarded_client(ip("3.3.3.3"), &headers, &trusted),
            ip("3.3.3.3")
        );
        assert_eq!(forwarded_client(proxy, &headers, &trusted), ip("2.2.2.2"));
        assert_eq!(forwarded_client(proxy, &headers, &[proxy]), ip("10.0.0.2"));
        headers.insert("x-forwarded-for", "nonsense".parse().expect("a value"));
        assert_eq!(forwarded_client(proxy, &headers, &trusted), proxy);
        assert_eq!(
            forwarded_client(proxy, &axum::http::HeaderMap::new(), &trusted),
            proxy
        );
    }

    #[test]
    fn the_reauthentication_message_names_the_limit() {
        let message = ErrorCode::ReauthenticationRequired.default_message();
        assert!(
            message.contains(&format!("{} minutes", RECENT_LOGIN.num_minutes())),
            "{message}"
        );
    }

    #[test]
    fn type_errors_do_not_quote_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            password: String,
        }
        let error = serde_json::from_str::<Body>(r#"{"password": 12345678}"#).unwrap_err();
        assert!(
            !describe(&error).contains("12345678"),
            "{}",
            describe(&error)
        );
        let error = serde_json::from_str::<Body>("{}").unwrap_err();
        assert!(
            describe(&error).contains("\"password\""),
            "{}",
            describe(&error)
        );
        let error = serde_json::from_str::<Body>("{").unwrap_err();
        assert_eq!(describe(&error), "The request is not valid JSON.");
    }
}
