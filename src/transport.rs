//! The transport the engine sends upstream requests through, and the clock it reads.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::platform::{BoxFuture, MaybeSendSync};

/// A GET request to an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The whole URL, query included.
    pub url: String,
    /// Headers to send (Sina's Referer).
    pub headers: Vec<(&'static str, String)>,
    /// The largest answer body accepted (bytes): what the upstream can legitimately send
    /// for the symbols asked, never more than [`MAX_BODY_BYTES`].
    pub max_body: usize,
}

/// An upstream's answer: its status and raw body bytes (decoding happens in the core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body, as sent.
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No complete answer within the timeout (the request is abandoned).
    Timeout,
    /// Connection refused, DNS failure, reset, body too large, ...
    Failed(String),
}

/// Sends GET requests. Natively this is reqwest; in the browser, fetch.
pub trait Transport: MaybeSendSync {
    /// Sends `request`; gives up with [`TransportError::Timeout`] after `timeout`.
    fn get<'a>(
        &'a self,
        request: &'a HttpRequest,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpResponse, TransportError>>;
}

/// The host (and port) of a URL, for error messages that must not carry the whole URL (its
/// query holds every symbol of the chunk).
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// The largest answer body accepted from an upstream, whatever the request.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Where the engine gets the time. Tests inject their own.
pub trait Clock: MaybeSendSync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock stopped at one instant: for tests, and for the CLI's `--now` / `QUANTDB_NOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// A clock that reads `start` when it is made and then runs with the system clock: for tests
/// that need time to pass from a chosen instant (the CLI's `--clock-start` /
/// `QUANTDB_CLOCK_START`, the JS option `clockStart`).
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use quantdb::{Clock, ShiftedClock};
///
/// let start = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap(); // 10:00 in Shanghai
/// let clock = ShiftedClock::starting_at(start);
/// let elapsed = clock.now() - start;
/// assert!(elapsed >= chrono::TimeDelta::zero() && elapsed < chrono::TimeDelta::seconds(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftedClock {
    /// What is added to the system clock.
    offset: chrono::TimeDelta,
}

impl ShiftedClock {
    /// A clock reading `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            offset: start - Utc::now(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        // Near the end of what chrono holds, the clock stops there.
        now.checked_add_signed(self.offset)
            .unwrap_or(if self.offset > chrono::TimeDelta::zero() {
                DateTime::<Utc>::MAX_UTC
            } else {
                DateTime::<Utc>::MIN_UTC
            })
    }
}

/// The system clock (UTC; the exchange time zone is applied by the calendar).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_starts_where_asked_and_runs() {
        let start = DateTime::parse_from_rfc3339("2026-11-28T10:00:00+08:00")
            .unwrap()
            .to_utc();
        let clock = ShiftedClock::starting_at(start);
        let first = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        let second = clock.now();
        assert!(
            first >= start && first - start < chrono::TimeDelta::seconds(5),
            "{first}"
        );
        assert!(
            second - first >= chrono::TimeDelta::milliseconds(20),
            "{first} {second}"
        );
        // At the ends of time it stops there rather than overflowing.
        assert_eq!(
            ShiftedClock::starting_at(DateTime::<Utc>::MAX_UTC).now(),
            DateTime::<Utc>::MAX_UTC
        );
        let early = ShiftedClock::starting_at(DateTime::<Utc>::MIN_UTC).now();
        assert!(early - DateTime::<Utc>::MIN_UTC < chrono::TimeDelta::seconds(5));
    }
}
