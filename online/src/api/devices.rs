//! Devices: the plugin on a company's sync computer, with access tokens
//! (1 hour) and refresh tokens (180 days, rotated on every use).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::companies::{administered_company, require_connected};
use super::extract::{ApiJson, DeviceCaller, RecentSessionCaller, SessionCaller};
use super::types::{
    time_text, DeviceList, DeviceRequest, DeviceTokens, DeviceView, RefreshRequest,
};
use super::{AppState, ACCESS_TOKEN_LIFETIME, REFRESH_TOKEN_LIFETIME};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::model::{Device, DeviceToken, DeviceTokenKind};
use crate::store::Rotation;
use crate::tokens::{issue, IssuedToken, TokenHash, TokenKind};

const MAX_COMPUTER_CHARS: usize = 200;

/// A new access and refresh token for `device_id`: the secrets for the
/// answer and the records to store.
fn new_tokens(
    device_id: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<(IssuedToken, IssuedToken, Vec<DeviceToken>)> {
    let access = issue(TokenKind::DeviceAccess)?;
    let refresh = issue(TokenKind::DeviceRefresh)?;
    let records = vec![
        DeviceToken {
            hash: access.hash.clone(),
            device_id,
            kind: DeviceTokenKind::Access,
            created_at: now,
            expires_at: now + ACCESS_TOKEN_LIFETIME,
            used_at: None,
        },
        DeviceToken {
            hash: refresh.hash.clone(),
            device_id,
            kind: DeviceTokenKind::Refresh,
            created_at: now,
            expires_at: now + REFRESH_TOKEN_LIFETIME,
            used_at: None,
        },
    ];
    Ok((access, refresh, records))
}

fn tokens_answer(
    device_id: Uuid,
    access: &IssuedToken,
    refresh: &IssuedToken,
    now: DateTime<Utc>,
) -> DeviceTokens {
    DeviceTokens {
        device_id: device_id.to_string(),
        access_token: access.secret.expose().to_owned(),
        access_expires_at: time_text(now + ACCESS_TOKEN_LIFETIME),
        refresh_token: refresh.secret.expose().to_owned(),
    }
}

fn required_text(field: &str, value: &str) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            format!("The field \"{field}\" is missing."),
        ));
    }
    if value.chars().count() > MAX_COMPUTER_CHARS || value.chars().any(char::is_control) {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            format!("The field \"{field}\" must be one line of at most {MAX_COMPUTER_CHARS} characters."),
        ));
    }
    Ok(value.to_owned())
}

/// Register this computer as a device of the company. Registering the same
/// computer again revokes its earlier device, whose acknowledged sync
/// cursor the new one takes over (Update connection).
#[utoipa::path(
    post, path = "/api/v1/companies/{id}/devices", operation_id = "create_device", tag = "Devices",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    request_body = DeviceRequest,
    responses(
        (status = 201, body = DeviceTokens),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`authentication_required`, `token_invalid`, `reauthentication_required` (the login is more than 10 minutes old)", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a super user of the company), `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`company_not_connected` (disconnected: register it again first)", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    RecentSessionCaller(auth): RecentSessionCaller,
    Path(company_id): Path<String>,
    ApiJson(request): ApiJson<DeviceRequest>,
) -> ApiResult<(StatusCode, Json<DeviceTokens>)> {
    let company = require_connected(administered_company(&state, &auth, &company_id).await?)?;
    let computer_id = required_text("computer_id", &request.computer_id)?;
    let computer_name = required_text("computer_name", &request.computer_name)?;
    let now = state.now();
    let device = Device {
        id: Uuid::new_v4(),
        company_id: company.id,
        computer_id,
        computer_name,
        created_by: auth.account.id,
        created_at: now,
        revoked_at: None,
    };
    let (access, refresh, records) = new_tokens(device.id, now)?;
    state.store.insert_device(&device, &records).await?;
    tracing::info!(
        company = %company.id,
        device = %device.id,
        access = %access.hash.short(),
        refresh = %refresh.hash.short(),
        "device registered"
    );
    Ok((
        StatusCode::CREATED,
        Json(tokens_answer(device.id, &access, &refresh, now)),
    ))
}

/// Exchange a refresh token for a new access and refresh token. A refresh
/// token works once: using it again revokes the device.
#[utoipa::path(
    post, path = "/api/v1/devices/refresh", operation_id = "refresh_device_tokens", tag = "Devices",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = DeviceTokens),
        (status = 401, description = "`token_invalid`: unknown, expired, revoked or reused", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<DeviceTokens>> {
    let token = request.refresh_token.expose();
    if !token.starts_with(TokenKind::DeviceRefresh.prefix()) {
        return Err(ErrorCode::TokenInvalid.into());
    }
    let old = TokenHash::of(token);
    let (found, _) = state
        .store
        .device_token(&old)
        .await?
        .ok_or(ErrorCode::TokenInvalid)?;
    let now = state.now();
    let (access, refresh, records) = new_tokens(found.device_id, now)?;
    match state
        .store
        .rotate_refresh_token(&old, &records, now)
        .await?
    {
        Rotation::Rotated(device) => {
            tracing::info!(
                device = %device.id,
                old = %old.short(),
                access = %access.hash.short(),
                refresh = %refresh.hash.short(),
                "device tokens refreshed"
            );
            Ok(Json(tokens_answer(device.id, &access, &refresh, now)))
        }
        Rotation::Reused { device_id } => {
            tracing::warn!(
                device = %device_id,
                old = %old.short(),
                "a refresh token was used twice: the device is revoked (possible theft)"
            );
            Err(ErrorCode::TokenInvalid.into())
        }
        Rotation::Invalid => Err(ErrorCode::TokenInvalid.into()),
    }
}

/// The device of the access token.
#[utoipa::path(
    get, path = "/api/v1/devices/current", operation_id = "current_device", tag = "Devices",
    security(("bearer" = [])),
    responses(
        (status = 200, body = DeviceView),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a device token)", body = ErrorBody),
    )
)]
pub async fn current(DeviceCaller(device): DeviceCaller) -> Json<DeviceView> {
    Json((&device).into())
}

/// Revoke the device of the access token (disconnect this computer).
#[utoipa::path(
    delete, path = "/api/v1/devices/current", operation_id = "revoke_current_device", tag = "Devices",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a device token)", body = ErrorBody),
    )
)]
pub async fn revoke_current(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
) -> ApiResult<StatusCode> {
    state.store.revoke_device(device.id, state.now()).await?;
    tracing::info!(device = %device.id, "device revoked by itself");
    Ok(StatusCode::NO_CONTENT)
}

/// The company's active devices.
#[utoipa::path(
    get, path = "/api/v1/companies/{id}/devices", operation_id = "list_devices", tag = "Devices",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    responses(
        (status = 200, body = DeviceList),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path(company_id): Path<String>,
) -> ApiResult<Json<DeviceList>> {
    let company = administered_company(&state, &auth, &company_id).await?;
    let devices = state.store.devices_of_company(company.id).await?;
    Ok(Json(DeviceList {
        devices: devices.iter().map(DeviceView::from).collect(),
    }))
}

/// Revoke one of the company's devices.
#[utoipa::path(
    delete, path = "/api/v1/companies/{id}/devices/{device_id}", operation_id = "revoke_device", tag = "Devices",
    security(("bearer" = []), ("session_cookie" = [])),
    params(
        ("id" = String, Path, description = "Company id"),
        ("device_id" = String, Path, description = "Device id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`forbidden`, `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path((company_id, device_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let company = administered_company(&state, &auth, &company_id).await?;
    let device_id = Uuid::parse_str(&device_id).map_err(|_| ErrorCode::NotFound)?;
    let device = state
        .store
        .device_by_id(device_id)
        .await?
        .filter(|device| device.company_id == company.id && device.revoked_at.is_none())
        .ok_or(ErrorCode::NotFound)?;
    state.store.revoke_device(device.id, state.now()).await?;
    tracing::info!(company = %company.id, device = %device.id, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}
