//! When and how long to wait before trying a request again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

/// Whether a request may be sent again after it may have reached the
/// service. Requests that certainly did not reach it (no connection) and
/// answers 429 (the service did nothing) are retried either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending it twice has the effect of sending it once: GET, DELETE,
    /// company registration (idempotent by contract), device creation
    /// (registering the computer again replaces the device whose tokens
    /// never arrived).
    Idempotent,
    /// Sending it twice could do harm: log in (counts towards throttling),
    /// sign-up (sends another e-mail), verification (consumes a one-time
    /// token), device refresh (a refresh token used twice revokes the
    /// device).
    Once,
}

/// Bounds and timing of retries: exponential backoff with jitter, or the
/// service's `Retry-After` where it sends one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_delay: Duration,
    /// Upper bound of one backoff (before jitter).
    pub max_delay: Duration,
    /// No retry starts when it would end later than this after the first
    /// attempt started; a `Retry-After` beyond it ends the retries at once.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_total: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `retry` (0 = the first retry), with
    /// "equal jitter": half the exponential delay, plus up to the other
    /// half chosen by `jitter` in `[0, 1)`. Spreads clients that failed
    /// together without ever retrying at once.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        let full = self
            .initial_delay
            .saturating_mul(factor)
            .min(self.max_delay);
        let half = full / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Parses a `Retry-After` header value: seconds, or an HTTP date (a date in
/// the past means "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The client's clock and sleep, replaceable so that tests of retries need
/// not wait.
pub trait Timer: Send + Sync + fmt::Debug {
    fn now(&self) -> Instant;
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Real time, with tokio's sleep.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_delay: ms(200),
            max_delay: ms(1000),
            max_total: Duration::from_secs(60),
        };
        let lowest: Vec<Duration> = (0..5).map(|n| policy.backoff(n, 0.0)).collect();
        assert_eq!(lowest, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        let highest: Vec<Duration> = (0..5).map(|n| policy.backoff(n, 1.0)).collect();
        assert_eq!(highest, [ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(policy.backoff(1, 0.5), ms(300));
        assert_eq!(policy.backoff(u32::MAX, 0.5), ms(750), "no overflow");
        assert_eq!(policy.backoff(0, 7.0), ms(200), "jitter is clamped");
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_as_a_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    #[test]
    fn unreadable_retry_after_is_ignored() {
        let now = SystemTime::now();
        for bad in ["", "soon", "-5", "1.5", "12 s"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
