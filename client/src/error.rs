//! What can go wrong talking to the service, in the five kinds of the
//! contract's table "Error codes → plugin status codes" (docs/ONLINE_API.md),
//! each mapped once to its `od_result`.

use crate::api::ErrorBody;
use od_abi::{
    od_result, OD_RESULT_SERVICE_AUTH, OD_RESULT_SERVICE_PROTOCOL, OD_RESULT_SERVICE_REFUSED,
    OD_RESULT_SERVICE_UNAVAILABLE, OD_RESULT_SERVICE_UNREACHABLE,
};
use reqwest::StatusCode;
use std::fmt;
use std::time::Duration;
use thiserror::Error;

/// The service's codes that mean "these credentials are not (or no longer)
/// good": the user must log in again. `reauthentication_required`: the
/// session is valid but its login is too old for what was asked (disconnect,
/// undo a registration, Change user, move the sync computer, register a
/// computer: the service's `RECENT_LOGIN`, 10 minutes).
pub const AUTH_CODES: [&str; 5] = [
    "invalid_credentials",
    "not_verified",
    "token_invalid",
    "authentication_required",
    "reauthentication_required",
];

/// A request to the online service failed. `Display` is written for the
/// bookkeeper; the service's own `message` is shown where it sent one.
/// Never contains a password or token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// No answer: connection refused, name not found, TLS failure, timeout,
    /// connection broken off.
    #[error(
        "The online service at {service} cannot be reached from this computer: {cause}. Check the internet \
         connection and any firewall or proxy, then try again."
    )]
    Unreachable {
        service: String,
        cause: UnreachableCause,
    },
    /// The service answered 5xx or 429, also after retrying.
    #[error("{}", unavailable_text(service, *status, message.as_deref(), *retry_after))]
    Unavailable {
        service: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The credentials are wrong or no longer valid (`invalid_credentials`,
    /// `not_verified`, `token_invalid`, `authentication_required`), or the
    /// login is too old for the request (`reauthentication_required`).
    #[error("{message}")]
    Auth { code: String, message: String },
    /// Any other refusal (4xx) with the service's stable code.
    #[error("{message}")]
    Refused { code: String, message: String },
    /// The answer was not the documented JSON.
    #[error(
        "The online service at {service} gave an answer this add-on does not understand ({detail}). Check that the \
         address is the Online Desktop service and that the add-on is up to date."
    )]
    Protocol { service: String, detail: String },
}

impl ClientError {
    /// The plugin status code (`OD_RESULT_SERVICE_*`) of this error.
    pub fn status_code(&self) -> od_result {
        match self {
            ClientError::Unreachable { .. } => OD_RESULT_SERVICE_UNREACHABLE,
            ClientError::Unavailable { .. } => OD_RESULT_SERVICE_UNAVAILABLE,
            ClientError::Auth { .. } => OD_RESULT_SERVICE_AUTH,
            ClientError::Refused { .. } => OD_RESULT_SERVICE_REFUSED,
            ClientError::Protocol { .. } => OD_RESULT_SERVICE_PROTOCOL,
        }
    }

    /// The service's stable error code, where it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Auth { code, .. } | ClientError::Refused { code, .. } => Some(code),
            ClientError::Unavailable { code, .. } => code.as_deref(),
            ClientError::Unreachable { .. } | ClientError::Protocol { .. } => None,
        }
    }

    /// Whether the service said the token is unknown, expired or revoked.
    pub fn is_token_invalid(&self) -> bool {
        matches!(self, ClientError::Auth { code, .. } if code == "token_invalid")
    }

    /// Whether the service wants a new login for this request: the session
    /// is valid, but it was created more than 10 minutes ago and the request
    /// changes the company's connection. Log in again and repeat it.
    pub fn is_reauthentication_required(&self) -> bool {
        matches!(self, ClientError::Auth { code, .. } if code == "reauthentication_required")
    }

    pub(crate) fn protocol(service: &str, detail: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            service: service.to_owned(),
            detail: detail.into(),
        }
    }

    /// The error for a complete answer that is not a success.
    pub(crate) fn from_answer(
        service: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> ClientError {
        let detail = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .map(|b| b.error);
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let body_retry_after = detail
                .as_ref()
                .and_then(|d| d.retry_after)
                .map(Duration::from_secs);
            let (code, message) = detail.map(|d| (d.code, d.message)).unzip();
            return ClientError::Unavailable {
                service: service.to_owned(),
                status: status.as_u16(),
                code,
                message,
                retry_after: retry_after.or(body_retry_after),
            };
        }
        if !status.is_client_error() {
            return ClientError::protocol(service, format!("unexpected answer {status}"));
        }
        match detail {
            Some(d) if AUTH_CODES.contains(&d.code.as_str()) => ClientError::Auth {
                code: d.code,
                message: d.message,
            },
            Some(d) => ClientError::Refused {
                code: d.code,
                message: d.message,
            },
            None => ClientError::protocol(
                service,
                format!("answer {status} without the documented error"),
            ),
        }
    }
}

fn unavailable_text(
    service: &str,
    status: u16,
    message: Option<&str>,
    retry_after: Option<Duration>,
) -> String {
    let when = match retry_after {
        Some(wait) if wait.as_secs() >= 120 => {
            format!("in about {} minutes", wait.as_secs().div_ceil(60))
        }
        Some(wait) => format!("in about {} seconds", wait.as_secs().max(1)),
        None => "later".to_owned(),
    };
    match message {
        Some(message) => format!("{message} Try again {when}."),
        None => format!(
            "The online service at {service} is not available right now (it answered {status}); it may be busy \
             or down for maintenance. Try again {when}."
        ),
    }
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreachableCause {
    /// Connection refused, no route, or the name could not be resolved.
    Connect,
    /// The service's certificate could not be verified, or the secure
    /// connection could not be set up.
    Tls,
    /// No complete answer within the time limit.
    Timeout,
    /// The connection broke off before the answer was complete.
    Broken,
}

impl fmt::Display for UnreachableCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnreachableCause::Connect => "no connection could be made",
            UnreachableCause::Tls => {
                "the secure connection could not be set up (its certificate could not be verified)"
            }
            UnreachableCause::Timeout => "it did not answer in time",
            UnreachableCause::Broken => "the connection broke off",
        })
    }
}

impl UnreachableCause {
    pub(crate) fn of(error: &reqwest::Error) -> UnreachableCause {
        if is_tls_failure(error) {
            UnreachableCause::Tls
        } else if error.is_timeout() {
            UnreachableCause::Timeout
        } else if error.is_connect() {
            UnreachableCause::Connect
        } else {
            UnreachableCause::Broken
        }
    }
}

/// Whether a rustls error is among the error's causes.
fn is_tls_failure(error: &reqwest::Error) -> bool {
    any_cause(error, |cause| {
        cause.downcast_ref::<rustls::Error>().is_some()
    })
}

/// Whether `test` holds for the error or any of its causes. Looks inside
/// `io::Error`s, whose `source()` skips the error they wrap (tokio-rustls
/// and hyper wrap their errors in them, sometimes twice).
pub(crate) fn any_cause(
    error: &(dyn std::error::Error + 'static),
    test: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if test(current) {
            return true;
        }
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => std::error::Error::source(io),
            },
            None => current.source(),
        };
    }
    false
}

/// What was wrong with a success answer's body, without quoting the body
/// (it may hold tokens): serde_json's own messages can quote values.
pub(crate) fn body_problem(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Io => "could not be read",
        serde_json::error::Category::Syntax => "is not valid JSON",
        serde_json::error::Category::Data => "does not have the documented fields",
        serde_json::error::Category::Eof => "is cut short",
    };
    format!(
        "the answer {what} (line {}, column {})",
        error.line(),
        error.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "https://online.example.com/";

    fn answer(status: u16, body: &str) -> ClientError {
        ClientError::from_answer(
            SERVICE,
            StatusCode::from_u16(status).unwrap(),
            None,
            body.as_bytes(),
        )
    }

    fn error_body(code: &str, message: &str) -> String {
        serde_json::json!({"error": {"code": code, "message": message}}).to_string()
    }

    #[test]
    fn auth_codes_map_to_auth() {
        for (status, code) in [
            (401, "invalid_credentials"),
            (403, "not_verified"),
            (401, "token_invalid"),
            (401, "authentication_required"),
            (401, "reauthentication_required"),
        ] {
            let error = answer(status, &error_body(code, "Log in again."));
            assert_eq!(error.status_code(), OD_RESULT_SERVICE_AUTH, "{code}");
            assert_eq!(error.code(), Some(code));
            assert_eq!(error.to_string(), "Log in again.");
        }
        assert!(answer(401, &error_body("token_invalid", "x")).is_token_invalid());
        assert!(!answer(401, &error_body("invalid_credentials", "x")).is_token_invalid());
        let old_login = answer(401, &error_body("reauthentication_required", "x"));
        assert!(old_login.is_reauthentication_required());
        assert!(!old_login.is_token_invalid());
        assert!(!answer(401, &error_body("token_invalid", "x")).is_reauthentication_required());
    }

    #[test]
    fn other_client_errors_are_refusals_with_the_service_message() {
        let error = answer(
            409,
            &error_body(
                "licence_in_use",
                "This licence already serves another company.",
            ),
        );
        assert_eq!(
            error,
            ClientError::Refused {
                code: "licence_in_use".into(),
                message: "This licence already serves another company.".into()
            }
        );
        assert_eq!(error.status_code(), OD_RESULT_SERVICE_REFUSED);
        assert_eq!(
            error.to_string(),
            "This licence already serves another company."
        );
        assert_eq!(
            answer(404, &error_body("not_found", "Not found.")).status_code(),
            OD_RESULT_SERVICE_REFUSED
        );
    }

    #[test]
    fn server_errors_and_throttling_are_unavailable() {
        let error = answer(503, "<html>maintenance</html>");
        assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNAVAILABLE);
        assert!(
            error.to_string().contains("not available right now"),
            "{error}"
        );
        let error = ClientError::from_answer(
            SERVICE,
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(240)),
            error_body("too_many_attempts", "Too many attempts.").as_bytes(),
        );
        assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNAVAILABLE);
        assert_eq!(error.code(), Some("too_many_attempts"));
        assert_eq!(
            error.to_string(),
            "Too many attempts. Try again in about 4 minutes."
        );
    }

    #[test]
    fn throttling_takes_the_wait_from_the_body_when_the_header_is_missing() {
        let body =
            r#"{"error": {"code": "too_many_attempts", "message": "Wait.", "retry_after": 7}}"#;
        match answer(429, body) {
            ClientError::Unavailable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn undocumented_answers_are_protocol_errors() {
        for (status, body) in [
            (404, "<html>not found</html>"),
            (400, r#"{"message": "no code"}"#),
            (302, ""),
            (101, ""),
        ] {
            let error = answer(status, body);
            assert_eq!(error.status_code(), OD_RESULT_SERVICE_PROTOCOL, "{status}");
            assert!(error.to_string().contains(SERVICE), "{error}");
        }
    }

    #[test]
    fn body_problems_do_not_quote_the_body() {
        let error = serde_json::from_str::<u32>("\"oda_very_secret\"").unwrap_err();
        assert!(error.to_string().contains("oda_very_secret"));
        let problem = body_problem(&error);
        assert!(!problem.contains("oda_"), "{problem}");
        assert!(problem.contains("documented fields"), "{problem}");
    }

    #[test]
    fn unreachable_names_the_service_and_the_cause() {
        let error = ClientError::Unreachable {
            service: SERVICE.into(),
            cause: UnreachableCause::Connect,
        };
        assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNREACHABLE);
        let text = error.to_string();
        assert!(text.contains(SERVICE) && text.contains("no connection could be made"));
        assert_eq!(error.code(), None);
    }
}
