//! The wizard's fields: what the person typed, and the checks made before
//! anything is sent.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use od_client::Secret;

/// When the first synchronisation starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartWhen {
    Now,
    Later,
}

impl StartWhen {
    pub fn value(self) -> &'static str {
        match self {
            StartWhen::Now => "now",
            StartWhen::Later => "later",
        }
    }

    pub fn parse(text: &str) -> Option<StartWhen> {
        match text.trim() {
            "now" => Some(StartWhen::Now),
            "later" => Some(StartWhen::Later),
            _ => None,
        }
    }
}

/// The fields of every page. The password is a [`Secret`]: never shown,
/// never logged, zeroed when dropped (after the login, on cancel and close).
pub struct Form {
    pub email: String,
    pub password: Option<Secret>,
    pub when: StartWhen,
    pub at: String,
}

impl Form {
    pub fn new(email: String) -> Form {
        Form {
            email,
            password: None,
            when: StartWhen::Now,
            at: String::new(),
        }
    }
}

/// Longest value a field takes (the service allows 128-character
/// passwords and 254-character addresses).
pub const MAX_FIELD_CHARS: usize = 512;

/// Why an e-mail address cannot be an Online ID, or `None` when its shape
/// is right (the service has the last word).
pub fn email_problem(email: &str) -> Option<&'static str> {
    let email = email.trim();
    if email.is_empty() {
        return Some("Enter the e-mail address of your Online ID.");
    }
    let shape_ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split('@').count() == 2
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    (!shape_ok).then_some("This is not an e-mail address; it looks like name@example.com.")
}

/// The time entered for a later first synchronisation: RFC 3339
/// (`2026-12-24T22:00:00+01:00`), or a date and time of this computer
/// (`2026-12-24 22:00`, also with `T` and seconds). It must lie in the
/// future.
pub fn parse_later(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Enter the date and time for the first synchronisation.".to_owned());
    }
    let when = if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        at.with_timezone(&Utc)
    } else {
        let local = [
            "%Y-%m-%d %H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%dT%H:%M:%S",
        ]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .ok_or_else(|| {
            format!(
                "\u{201c}{text}\u{201d} is not a date and time; write it like 2026-12-24 22:00."
            )
        })?;
        Local
            .from_local_datetime(&local)
            .earliest()
            .ok_or_else(|| {
                format!("{text} does not exist on this computer's clock (a daylight-saving change); choose another time.")
            })?
            .with_timezone(&Utc)
    };
    if when <= now {
        return Err(
            "This time has already passed; choose a date and time in the future.".to_owned(),
        );
    }
    Ok(when)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        for good in ["a@b.no", "kari.nordmann+od@firma.example.com"] {
            assert_eq!(email_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "  ",
            "kari",
            "kari@",
            "@firma.no",
            "kari@firma",
            "ka ri@firma.no",
            "a@b@c.no",
            "a@.no",
            "a@b..no",
        ] {
            assert!(email_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn later_times_must_be_in_the_future() {
        let now = Utc::now();
        assert!(parse_later("2099-12-24T22:00:00+01:00", now).is_ok());
        assert!(parse_later("2099-12-24 22:00", now).is_ok());
        assert!(parse_later("2099-12-24T22:00:30", now).is_ok());
        assert!(parse_later("2001-01-01 10:00", now)
            .unwrap_err()
            .contains("already passed"));
        assert!(parse_later("tomorrow", now)
            .unwrap_err()
            .contains("not a date"));
        assert!(parse_later("", now).unwrap_err().contains("Enter"));
    }
}
