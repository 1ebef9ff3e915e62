//! Abuse resistance: login throttling and rate limits on the endpoints that
//! send mail (docs/ONLINE_API.md, "Login throttling").
//!
//! Events live in the store, not in memory, so that several service
//! instances sharing one database (PostgreSQL) throttle together and a
//! restart does not reset the counters. Keys are hashed: the table holds no
//! e-mail addresses or IP addresses of people who have no Online ID.

use chrono::{DateTime, Duration, Utc};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::store::Store;
use crate::tokens::TokenHash;

/// The numbers behind throttling and rate limits. [`Limits::default`] is
/// what the contract promises; tests may lower the mail limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failed logins per account that cost nothing.
    pub login_free_failures: u32,
    /// How long a failed login counts for its account.
    pub login_account_window: Duration,
    /// The longest an account's next attempt has to wait.
    pub login_max_delay: Duration,
    /// Failed logins per client IP (all accounts) within `login_ip_window`.
    pub login_ip_failures: u32,
    pub login_ip_window: Duration,
    /// Sign-up and reset requests per e-mail address within `mail_window`.
    pub mails_per_address: u32,
    /// Sign-up and reset requests per client IP within `mail_window`.
    pub mail_requests_per_ip: u32,
    pub mail_window: Duration,
    /// Largest request body, in bytes.
    pub body_limit: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_free_failures: 5,
            login_account_window: Duration::hours(24),
            login_max_delay: Duration::minutes(15),
            login_ip_failures: 50,
            login_ip_window: Duration::minutes(15),
            mails_per_address: 5,
            mail_requests_per_ip: 30,
            mail_window: Duration::hours(1),
            body_limit: 64 * 1024,
        }
    }
}

impl Limits {
    /// How long throttling events must be kept.
    pub fn longest_window(&self) -> Duration {
        self.login_account_window
            .max(self.login_ip_window)
            .max(self.mail_window)
    }
}

const LOGIN_FAILURE_ACCOUNT: &str = "login_failure_account";
const LOGIN_FAILURE_IP: &str = "login_failure_ip";
const MAIL_TO_ADDRESS: &str = "mail_address";
const MAIL_FROM_IP: &str = "mail_ip";

fn key(kind: &str, value: &str) -> String {
    TokenHash::of(&format!("{kind}\n{value}"))
        .as_str()
        .to_owned()
}

/// Whole seconds until `until`, at least 1.
fn seconds_until(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let millis = (until - now).num_milliseconds().max(0);
    (millis as u64).div_ceil(1000).max(1)
}

/// The wait before the next attempt after `failures` failures in the
/// window: nothing for the free ones, then 1 s, 2 s, 4 s, ... capped.
pub fn login_delay(limits: &Limits, failures: u32) -> Duration {
    if failures < limits.login_free_failures {
        return Duration::zero();
    }
    // 2^30 s is decades: past any sensible cap, and far from overflowing.
    let doublings = (failures - limits.login_free_failures).min(30);
    Duration::seconds(1i64 << doublings).min(limits.login_max_delay)
}

pub struct Throttle<'a> {
    pub store: &'a dyn Store,
    pub limits: &'a Limits,
    pub now: DateTime<Utc>,
}

impl Throttle<'_> {
    /// Refuses a login attempt, without looking at the password, while the
    /// client IP or the account (by address, known or not, so the answer
    /// reveals nothing) must wait.
    pub async fn check_login(&self, email: &str, ip: &str) -> ApiResult<()> {
        let ip_window = self
            .store
            .event_window(
                LOGIN_FAILURE_IP,
                &key(LOGIN_FAILURE_IP, ip),
                self.now - self.limits.login_ip_window,
            )
            .await?;
        if ip_window.count >= self.limits.login_ip_failures {
            let until = ip_window.oldest.unwrap_or(self.now) + self.limits.login_ip_window;
            tracing::warn!("login refused: too many failed logins from this client address");
            return Err(ApiError::throttled(
                ErrorCode::TooManyAttempts,
                seconds_until(until, self.now),
            ));
        }
        let account_window = self
            .store
            .event_window(
                LOGIN_FAILURE_ACCOUNT,
                &key(LOGIN_FAILURE_ACCOUNT, email),
                self.now - self.limits.login_account_window,
            )
            .await?;
        let delay = login_delay(self.limits, account_window.count);
        if let Some(newest) = account_window.newest {
            let until = newest + delay;
            if delay > Duration::zero() && self.now < until {
                tracing::info!(
                    failures = account_window.count,
                    "login refused: the account must wait after failed logins"
                );
                return Err(ApiError::throttled(
                    ErrorCode::TooManyAttempts,
                    seconds_until(until, self.now),
                ));
            }
        }
        Ok(())
    }

    pub async fn login_failed(&self, email: &str, ip: &str) -> ApiResult<()> {
        self.store
            .record_event(
                LOGIN_FAILURE_ACCOUNT,
                &key(LOGIN_FAILURE_ACCOUNT, email),
                self.now,
            )
            .await?;
        self.store
            .record_event(LOGIN_FAILURE_IP, &key(LOGIN_FAILURE_IP, ip), self.now)
            .await?;
        Ok(())
    }

    /// A successful login or a password reset starts the account afresh.
    pub async fn clear_account(&self, email: &str) -> ApiResult<()> {
        self.store
            .clear_events(LOGIN_FAILURE_ACCOUNT, &key(LOGIN_FAILURE_ACCOUNT, email))
            .await?;
        Ok(())
    }

    /// Admits (and counts) a request that may send a mail to `email`, or
    /// refuses it while the address or the client IP is over its limit.
    pub async fn admit_mail_request(&self, email: &str, ip: &str) -> ApiResult<()> {
        let since = self.now - self.limits.mail_window;
        let address_key = key(MAIL_TO_ADDRESS, email);
        let ip_key = key(MAIL_FROM_IP, ip);
        for (kind, key, limit) in [
            (MAIL_FROM_IP, &ip_key, self.limits.mail_requests_per_ip),
            (MAIL_TO_ADDRESS, &address_key, self.limits.mails_per_address),
        ] {
            let window = self.store.event_window(kind, key, since).await?;
            if window.count >= limit {
                let until = window.oldest.unwrap_or(self.now) + self.limits.mail_window;
                tracing::warn!(limit = kind, "mail request refused: rate limit reached");
                return Err(ApiError::throttled(
                    ErrorCode::TooManyRequests,
                    seconds_until(until, self.now),
                ));
            }
        }
        self.store
            .record_event(MAIL_TO_ADDRESS, &address_key, self.now)
            .await?;
        self.store
            .record_event(MAIL_FROM_IP, &ip_key, self.now)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_after_the_free_failures_up_to_the_cap() {
        let limits = Limits::default();
        let delays: Vec<i64> = (0..18)
            .map(|failures| login_delay(&limits, failures).num_seconds())
            .collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        );
        assert_eq!(login_delay(&limits, u32::MAX), Duration::minutes(15));
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        let now = Utc::now();
        assert_eq!(seconds_until(now + Duration::milliseconds(1), now), 1);
        assert_eq!(seconds_until(now + Duration::milliseconds(1001), now), 2);
        assert_eq!(seconds_until(now - Duration::seconds(5), now), 1);
    }

    #[test]
    fn keys_are_hashed_per_kind() {
        assert_ne!(key("a", "x@example.com"), key("b", "x@example.com"));
        assert!(!key("a", "x@example.com").contains("example"));
    }
}
