//! The one error shape of the API (docs/ONLINE_API.md, "Conventions"):
//! `{"error": {"code", "message", ...}}` with a stable code and a message a
//! bookkeeper understands.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::password::PasswordError;
use crate::store::StoreError;
use crate::tokens::RandomError;

/// Every error code the API answers with. Codes are stable: clients decide
/// on them; messages may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    EmailInvalid,
    PasswordTooShort,
    PasswordTooLong,
    TokenInvalid,
    InvalidCredentials,
    AuthenticationRequired,
    ReauthenticationRequired,
    NotVerified,
    CsrfFailed,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    LicenceInvalid,
    LicenceNotGranted,
    LicenceEvaluation,
    LicenceExpired,
    LicenceInUse,
    CompanyConnectedElsewhere,
    CompanyAlreadyConnected,
    RegistrationIncomplete,
    BodyTooLarge,
    UnsupportedMediaType,
    TooManyAttempts,
    TooManyRequests,
    LeaseHeld,
    StaleFencing,
    SchemaMissing,
    ValidationFailed,
    EntityReadOnly,
    RecordExists,
    VersionConflict,
    CompanyNotConnected,
    CompanyInUse,
    HostRestored,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidRequest
            | EmailInvalid
            | PasswordTooShort
            | PasswordTooLong
            | LicenceInvalid
            | RegistrationIncomplete
            | ValidationFailed => StatusCode::BAD_REQUEST,
            TokenInvalid
            | InvalidCredentials
            | AuthenticationRequired
            | ReauthenticationRequired => StatusCode::UNAUTHORIZED,
            NotVerified | CsrfFailed | Forbidden => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            LicenceNotGranted
            | LicenceEvaluation
            | LicenceExpired
            | LicenceInUse
            | CompanyConnectedElsewhere
            | CompanyAlreadyConnected
            | LeaseHeld
            | StaleFencing
            | SchemaMissing
            | EntityReadOnly
            | RecordExists
            | VersionConflict
            | CompanyNotConnected
            | CompanyInUse
            | HostRestored => StatusCode::CONFLICT,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TooManyAttempts | TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message used when the code needs no details.
    pub fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "The request is not valid.",
            EmailInvalid => "This is not a valid e-mail address. Check it and try again.",
            PasswordTooShort => "The password is too short: use at least 8 characters.",
            PasswordTooLong => "The password is too long: use at most 128 characters.",
            TokenInvalid => {
                "This link or token is not valid any more: it is unknown, has been used already, \
                 or has expired. Ask for a new one."
            }
            InvalidCredentials => {
                "The e-mail address or the password is wrong. If you have just created your \
                 Online ID, first open the link in the e-mail we sent you (look in the spam \
                 folder too)."
            }
            AuthenticationRequired => "Log in with your Online ID first.",
            ReauthenticationRequired => {
                "For this, log in again with your Online ID (the last log-in was more than 10 \
                 minutes ago)."
            }
            NotVerified => {
                "Your Online ID is not verified yet. Open the link in the e-mail we sent you; \
                 look in the spam folder if you cannot find it."
            }
            CsrfFailed => {
                "The request was refused because it did not carry the security token of your \
                 session. Reload the page and try again."
            }
            Forbidden => "You do not have permission to do this.",
            NotFound => "Not found.",
            MethodNotAllowed => "This address does not accept this kind of request.",
            LicenceInvalid => "The licence document is not valid.",
            LicenceNotGranted => {
                "The licence does not include Online Desktop. Ask your dealer for a licence \
                 with the Online Desktop add-on."
            }
            LicenceEvaluation => {
                "This is an evaluation licence. A company can be put online only with a full \
                 licence; ask your dealer."
            }
            LicenceExpired => {
                "The licence has no valid service agreement. Renew the service agreement with \
                 your dealer and register the new licence."
            }
            LicenceInUse => {
                "This licence is already used for another company. Each company needs its own \
                 Online Desktop licence; ask your dealer."
            }
            CompanyConnectedElsewhere => {
                "This company is already connected to Online Desktop from another installation \
                 (system database). Disconnect it there first."
            }
            CompanyAlreadyConnected => {
                "This company is already connected to Online Desktop by another Online ID. Ask \
                 the person shown as \"Connected by\" in the company settings."
            }
            RegistrationIncomplete => "The company's registration data is incomplete.",
            BodyTooLarge => "The request is too large.",
            UnsupportedMediaType => "The request must be JSON (Content-Type: application/json).",
            TooManyAttempts => "Too many failed attempts. Wait a moment and try again.",
            TooManyRequests => "Too many requests. Wait a while and try again.",
            LeaseHeld => {
                "Another computer is this company's sync computer. A super user of the company \
                 can move synchronisation to this computer online."
            }
            StaleFencing => {
                "This computer no longer holds the synchronisation lease (it expired or was \
                 moved). Ask for the lease again."
            }
            SchemaMissing => "The sync computer has not sent the data structure (schema) yet.",
            ValidationFailed => "Some fields are not valid.",
            EntityReadOnly => "These records are maintained in the host only.",
            RecordExists => "A record with this id exists already.",
            VersionConflict => {
                "The record was changed in the meantime. Reload it and make your change again."
            }
            CompanyNotConnected => {
                "This company is not connected to Online Desktop (it was disconnected): its data \
                 is not online. Connect it again from the company settings in the program."
            }
            CompanyInUse => {
                "This company has been used online already (data was synchronised, or it has other \
                 users), so its registration cannot simply be undone. Disconnect it instead."
            }
            HostRestored => {
                "The company database on the sync computer is older than what was synchronised: \
                 it seems to have been restored from a backup. Synchronisation stops until the \
                 company's administrator runs Update connection in the company settings."
            }
            Internal => "Something went wrong in the online service. Try again later.",
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds to wait, with 429 (the same as the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// With `registration_incomplete`: the fields that are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// An error answer. Internal causes are logged when the answer is made and
/// never sent to the client.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
    pub fields: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(code: ErrorCode) -> ApiError {
        ApiError {
            code,
            message: code.default_message().to_owned(),
            retry_after: None,
            fields: None,
        }
    }

    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            message: message.into(),
            ..ApiError::new(code)
        }
    }

    /// 429 with how long to wait.
    pub fn throttled(code: ErrorCode, retry_after_seconds: u64) -> ApiError {
        let seconds = retry_after_seconds.max(1);
        let wait = if seconds < 120 {
            format!("{seconds} seconds")
        } else {
            format!("{} minutes", seconds.div_ceil(60))
        };
        let message = match code {
            ErrorCode::TooManyAttempts => format!(
                "Too many failed attempts. Wait {wait} and try again, or reset your password."
            ),
            _ => format!("Too many requests. Wait {wait} and try again."),
        };
        ApiError {
            code,
            message,
            retry_after: Some(seconds),
            fields: None,
        }
    }

    /// 500, logging `cause` (which must hold no secret).
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(ErrorCode::Internal)
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(error)
    }
}

impl From<PasswordError> for ApiError {
    fn from(error: PasswordError) -> Self {
        ApiError::internal(error)
    }
}

impl From<RandomError> for ApiError {
    fn from(error: RandomError) -> Self {
        ApiError::internal(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let retry_after = self.retry_after;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                retry_after,
                fields: self.fields,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_in_snake_case() {
        let json = serde_json::to_string(&ErrorCode::CompanyConnectedElsewhere).expect("json");
        assert_eq!(json, "\"company_connected_elsewhere\"");
    }

    #[test]
    fn throttled_answers_say_how_long_to_wait() {
        let error = ApiError::throttled(ErrorCode::TooManyAttempts, 900);
        assert_eq!(error.retry_after, Some(900));
        assert!(error.message.contains("15 minutes"), "{}", error.message);
        let error = ApiError::throttled(ErrorCode::TooManyRequests, 0);
        assert_eq!(error.retry_after, Some(1));
    }
}
