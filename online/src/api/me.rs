//! "My profile": the Online ID of the session.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::accounts::password_rule_error;
use super::extract::{ApiJson, ClientIp, SessionCaller};
use super::types::{AccountView, CompanySummary, MeView, PasswordChangeRequest, ProfileUpdate};
use super::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::password::check_rules;

const MAX_NAME_CHARS: usize = 200;

/// The companies an Online ID can reach.
pub(super) async fn company_summaries(
    state: &AppState,
    account_id: uuid::Uuid,
) -> ApiResult<Vec<CompanySummary>> {
    Ok(state
        .store
        .memberships(account_id)
        .await?
        .into_iter()
        .map(|membership| CompanySummary {
            id: membership.company.id.to_string(),
            name: membership.company.details.name,
            role: membership.role,
        })
        .collect())
}

/// My profile, with the companies I can reach.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "Online ID",
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, body = MeView),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
    )
)]
pub async fn get_me(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
) -> ApiResult<Json<MeView>> {
    let account = auth.account;
    let companies = company_summaries(&state, account.id).await?;
    Ok(Json(MeView {
        id: account.id.to_string(),
        email: account.email,
        name: account.name,
        verified: account.verified,
        created_at: super::types::time_text(account.created_at),
        companies,
    }))
}

/// Change my name.
#[utoipa::path(
    patch, path = "/api/v1/me", tag = "Online ID",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = ProfileUpdate,
    responses(
        (status = 200, body = AccountView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`csrf_failed`", body = ErrorBody),
    )
)]
pub async fn patch_me(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    ApiJson(update): ApiJson<ProfileUpdate>,
) -> ApiResult<Json<AccountView>> {
    let name = update.name.trim();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            format!("The name must be one line of at most {MAX_NAME_CHARS} characters."),
        ));
    }
    state.store.set_account_name(auth.account.id, name).await?;
    let mut account = auth.account;
    account.name = name.to_owned();
    Ok(Json((&account).into()))
}

/// Change my password. Ends every other session of the Online ID.
#[utoipa::path(
    post, path = "/api/v1/me/password", tag = "Online ID",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = PasswordChangeRequest,
    responses(
        (status = 204, description = "Changed; other sessions ended"),
        (status = 400, description = "`password_too_short`, `password_too_long`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials` (wrong current password), `authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`csrf_failed`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SessionCaller(auth): SessionCaller,
    ApiJson(request): ApiJson<PasswordChangeRequest>,
) -> ApiResult<StatusCode> {
    let email = auth.account.email.clone();
    // Guessing the current password through a stolen session is throttled
    // like guessing it at the login.
    let throttle = state.throttle();
    throttle.check_login(&email, &ip).await?;
    let stored = state
        .store
        .account_by_email(&email)
        .await?
        .and_then(|login| login.password_hash)
        .map(|hash| hash.expose().to_owned());
    if !state
        .passwords
        .verify(&request.current_password, stored)
        .await?
    {
        throttle.login_failed(&email, &ip).await?;
        return Err(ErrorCode::InvalidCredentials.into());
    }
    check_rules(&request.new_password).map_err(password_rule_error)?;
    let password_hash = state.passwords.hash(&request.new_password).await?;
    state
        .store
        .set_password(auth.account.id, &password_hash, Some(auth.session.id))
        .await?;
    tracing::info!(account = %auth.account.id, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}
