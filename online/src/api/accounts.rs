//! Online IDs: sign-up, verification, password reset.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::extract::{ApiJson, ClientIp};
use super::types::{
    EmailRequest, MessageResponse, PasswordResetConfirmRequest, VerifyRequest, VerifyResponse,
};
use super::{AppState, RESET_LINK_LIFETIME, VERIFY_LINK_LIFETIME};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::mail::texts;
use crate::model::{Account, EmailLink, LinkPurpose};
use crate::password::{check_rules, PasswordRuleError};
use crate::secret::SecretString;
use crate::store::StoreError;
use crate::tokens::{issue, TokenHash, TokenKind};

/// The same answer for every address, so nobody can find out who has an
/// Online ID by signing up (or resetting) with other people's addresses.
const MAIL_ON_ITS_WAY: &str = "If this address can receive mail, an e-mail with a link is on its \
     way. Open the link to continue; look in the spam folder if you cannot find the e-mail.";

/// The normalised form of an e-mail address (trimmed, lower case), or
/// `None` when it is not one.
pub fn normalise_email(text: &str) -> Option<String> {
    let email = text.trim().to_lowercase();
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.rsplit_once('@')?;
    let labels_ok = domain.split('.').count() >= 2
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if local.is_empty() || local.len() > 64 || local.contains('@') || !labels_ok {
        return None;
    }
    email.parse::<lettre::Address>().ok()?;
    Some(email)
}

pub(super) fn password_rule_error(error: PasswordRuleError) -> ApiError {
    match error {
        PasswordRuleError::TooShort => ErrorCode::PasswordTooShort.into(),
        PasswordRuleError::TooLong => ErrorCode::PasswordTooLong.into(),
    }
}

/// Stores a new one-time link for `account_id` and returns its URL.
async fn issue_link(
    state: &AppState,
    account_id: Uuid,
    purpose: LinkPurpose,
    now: DateTime<Utc>,
) -> ApiResult<SecretString> {
    let token = issue(TokenKind::EmailLink)?;
    let (page, lifetime) = match purpose {
        LinkPurpose::Verify => ("verify", VERIFY_LINK_LIFETIME),
        LinkPurpose::Reset => ("reset", RESET_LINK_LIFETIME),
    };
    state
        .store
        .insert_email_link(&EmailLink {
            hash: token.hash.clone(),
            account_id,
            purpose,
            created_at: now,
            expires_at: now + lifetime,
        })
        .await?;
    tracing::debug!(link = %token.hash.short(), purpose = purpose.as_str(), "one-time link issued");
    Ok(SecretString::new(format!(
        "{}/{page}?token={}",
        state.public_url,
        token.secret.expose()
    )))
}

async fn send_verification(
    state: &AppState,
    account: &Account,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let link = issue_link(state, account.id, LinkPurpose::Verify, now).await?;
    state.send_mail_later(texts::verification(&account.email, &link));
    Ok(())
}

async fn send_reset(
    state: &AppState,
    account: &Account,
    now: DateTime<Utc>,
    already_registered: bool,
) -> ApiResult<()> {
    let link = issue_link(state, account.id, LinkPurpose::Reset, now).await?;
    let mail = if already_registered {
        texts::already_registered(
            &account.email,
            &format!("{}/login", state.public_url),
            &link,
        )
    } else {
        texts::password_reset(&account.email, &link)
    };
    state.send_mail_later(mail);
    Ok(())
}

fn mail_on_its_way() -> (StatusCode, Json<MessageResponse>) {
    (
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message: MAIL_ON_ITS_WAY.to_owned(),
        }),
    )
}

/// Sign up: create an Online ID.
///
/// Always answers 202 with the same message, whether or not the address has
/// an Online ID. A new address gets a verification mail (link valid 24 h);
/// a verified one a "you already have an Online ID" mail with a reset link.
#[utoipa::path(
    post, path = "/api/v1/accounts", tag = "Online ID",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "Mail on its way (same answer for every address)", body = MessageResponse),
        (status = 400, description = "`email_invalid`, `invalid_request`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`", body = ErrorBody),
    )
)]
pub async fn sign_up(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<EmailRequest>,
) -> ApiResult<(StatusCode, Json<MessageResponse>)> {
    let email = normalise_email(&request.email).ok_or(ErrorCode::EmailInvalid)?;
    state.throttle().admit_mail_request(&email, &ip).await?;
    let now = state.now();
    let existing = state.store.account_by_email(&email).await?;
    match existing {
        Some(login) if login.account.verified => {
            send_reset(&state, &login.account, now, true).await?;
        }
        Some(login) => send_verification(&state, &login.account, now).await?,
        None => {
            let account = Account {
                id: Uuid::new_v4(),
                email: email.clone(),
                name: String::new(),
                verified: false,
                created_at: now,
            };
            match state.store.insert_account(&account).await {
                Ok(()) => {
                    tracing::info!(account = %account.id, "Online ID created, not verified yet");
                    send_verification(&state, &account, now).await?;
                }
                // Signed up twice at the same moment: the other request
                // created it and sends the mail.
                Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(mail_on_its_way())
}

/// Verify the address and choose the first password.
#[utoipa::path(
    post, path = "/api/v1/accounts/verify", tag = "Online ID",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Verified; log in next", body = VerifyResponse),
        (status = 400, description = "`password_too_short`, `password_too_long`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`token_invalid`: unknown, used or expired link", body = ErrorBody),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    let now = state.now();
    let hash = TokenHash::of(request.token.expose());
    if state
        .store
        .email_link_account(&hash, LinkPurpose::Verify, now)
        .await?
        .is_none()
    {
        return Err(ErrorCode::TokenInvalid.into());
    }
    check_rules(&request.password).map_err(password_rule_error)?;
    let password_hash = state.passwords.hash(&request.password).await?;
    let account = state
        .store
        .consume_email_link(&hash, LinkPurpose::Verify, &password_hash, now)
        .await?
        .ok_or(ErrorCode::TokenInvalid)?;
    tracing::info!(account = %account.id, "Online ID verified");
    Ok(Json(VerifyResponse {
        account: (&account).into(),
    }))
}

/// Ask for a password reset link.
///
/// Always answers 202 with the same message. A verified address gets a
/// reset link (1 h); an address that is not verified yet gets a new
/// verification link instead (its password is chosen there).
#[utoipa::path(
    post, path = "/api/v1/accounts/password-reset", tag = "Online ID",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "Mail on its way (same answer for every address)", body = MessageResponse),
        (status = 400, description = "`email_invalid`, `invalid_request`", body = ErrorBody),
        (status = 429, description = "`too_many_requests`", body = ErrorBody),
    )
)]
pub async fn password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<EmailRequest>,
) -> ApiResult<(StatusCode, Json<MessageResponse>)> {
    let email = normalise_email(&request.email).ok_or(ErrorCode::EmailInvalid)?;
    state.throttle().admit_mail_request(&email, &ip).await?;
    let now = state.now();
    match state.store.account_by_email(&email).await? {
        Some(login) if login.account.verified => {
            send_reset(&state, &login.account, now, false).await?
        }
        Some(login) => send_verification(&state, &login.account, now).await?,
        None => {}
    }
    Ok(mail_on_its_way())
}

/// Choose a new password with the link from the reset mail. Ends every
/// session of the Online ID and lifts login throttling.
#[utoipa::path(
    post, path = "/api/v1/accounts/password-reset/confirm", tag = "Online ID",
    request_body = PasswordResetConfirmRequest,
    responses(
        (status = 204, description = "Password changed; every session ended"),
        (status = 400, description = "`password_too_short`, `password_too_long`, `invalid_request`", body = ErrorBody),
        (status = 401, description = "`token_invalid`: unknown, used or expired link", body = ErrorBody),
    )
)]
pub async fn password_reset_confirm(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PasswordResetConfirmRequest>,
) -> ApiResult<StatusCode> {
    let now = state.now();
    let hash = TokenHash::of(request.token.expose());
    if state
        .store
        .email_link_account(&hash, LinkPurpose::Reset, now)
        .await?
        .is_none()
    {
        return Err(ErrorCode::TokenInvalid.into());
    }
    check_rules(&request.new_password).map_err(password_rule_error)?;
    let password_hash = state.passwords.hash(&request.new_password).await?;
    let account = state
        .store
        .consume_email_link(&hash, LinkPurpose::Reset, &password_hash, now)
        .await?
        .ok_or(ErrorCode::TokenInvalid)?;
    state.throttle().clear_account(&account.email).await?;
    tracing::info!(account = %account.id, "password reset; all sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalise_email("  Ann.Smith@Example.COM ").as_deref(),
            Some("ann.smith@example.com")
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@@example.com",
            "ann smith@example.com",
            "ann@exa mple.com",
            "ann@.example.com",
            "ann@example..com",
            "ann@-example.com",
            "ann\n@example.com",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad:?}");
        }
        assert_eq!(
            normalise_email(&format!("{}@example.com", "a".repeat(65))),
            None
        );
    }
}
