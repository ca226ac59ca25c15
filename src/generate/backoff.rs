//! When to ask a model server again: exponential backoff with jitter,
//! bounded attempts, and the server's own `Retry-After` honoured.

use std::time::{Duration, SystemTime};

/// The longest wait a `Retry-After` may impose: a server asking for more
/// is asked again after this (its request may still succeed; the attempts
/// stay bounded either way).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// How often and how long to retry one answer's request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Requests sent at most for one answer (the first included).
    pub attempts: u32,
    /// The wait after the first failure; doubled after each further one.
    pub first: Duration,
    /// The longest wait between two attempts (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 5,
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The exponential wait after `failed` failures (1 for the first),
    /// before jitter: `first`, `2·first`, `4·first` … capped at `max`.
    pub fn base(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(20);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The wait after `failed` failures: the base with "equal jitter" (a
    /// uniform draw from its upper half, `unit` in [0, 1)), so concurrent
    /// requests that failed together do not all come back together; never
    /// shorter than what the server asked for with `Retry-After`.
    pub fn wait(&self, failed: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let base = self.base(failed);
        let jittered = base / 2 + base.mul_f64(unit.clamp(0.0, 1.0) / 2.0);
        match retry_after {
            Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

/// A uniform draw in [0, 1) from the OS's randomness (a UUID v4 carries
/// 122 random bits; 53 of them make the float).
pub fn jitter_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// A `Retry-After` header's value: delay-seconds or an HTTP date (RFC
/// 9110 §10.2.3), read against `now`; a date in the past is no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_its_cap_and_jitters_within_its_upper_half() {
        let policy = Backoff {
            attempts: 8,
            first: Duration::from_millis(500),
            max: Duration::from_secs(4),
        };
        let bases: Vec<u128> = (1..=6).map(|n| policy.base(n).as_millis()).collect();
        assert_eq!(bases, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(policy.wait(1, None, 0.0), Duration::from_millis(250));
        assert_eq!(policy.wait(3, None, 0.5), Duration::from_millis(1500));
        assert!(policy.wait(3, None, 0.999_999) < Duration::from_millis(2000));
        // Huge failure counts neither overflow nor pass the cap.
        assert_eq!(policy.base(u32::MAX), Duration::from_secs(4));
        for _ in 0..1000 {
            let unit = jitter_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
        }
        // Not a constant: two draws of 53 bits agree with chance 2^-53.
        assert_ne!(jitter_unit(), jitter_unit());
    }

    #[test]
    fn retry_after_is_honoured_but_bounded() {
        let policy = Backoff::default();
        let asked = Some(Duration::from_secs(7));
        assert_eq!(policy.wait(1, asked, 0.0), Duration::from_secs(7));
        // A longer backoff than the server asked for stays the backoff.
        let late = policy.wait(7, Some(Duration::from_secs(1)), 0.0);
        assert_eq!(late, Duration::from_secs(15));
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(3600)), 0.0),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
