//! Helpers shared by the integration tests: a fixed clock and a client aimed at the mock.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use quantdb::{Clock, Provider, QuantDb, QuantDbBuilder};

use mock_upstream::MockUpstream;

/// A clock the test moves by hand.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Monday 2026-11-30 10:00:00 in Shanghai: continuous trading, TTL 30 s.
    pub fn trading() -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(
            chrono::FixedOffset::east_opt(8 * 3600)
                .unwrap()
                .with_ymd_and_hms(2026, 11, 30, 10, 0, 0)
                .unwrap()
                .with_timezone(&Utc),
        )))
    }

    /// Sets the time, given in exchange time (`2026-11-30T16:00:00`).
    pub fn set_local(&self, local: &str) {
        let t = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S").unwrap();
        let t = chrono::FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .from_local_datetime(&t)
            .unwrap();
        *self.0.lock().unwrap() = t.with_timezone(&Utc);
    }

    pub fn advance(&self, secs: i64) {
        *self.0.lock().unwrap() += chrono::Duration::seconds(secs);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A builder with every provider aimed at the mock, the given clock, and either a cache
/// directory or no persistent tier.
pub fn builder(mock: &MockUpstream, clock: Arc<ManualClock>, dir: Option<&Path>) -> QuantDbBuilder {
    let mut b = QuantDb::builder().clock(clock);
    for p in Provider::ALL {
        b = b.base_url(p, mock.base_url());
    }
    match dir {
        Some(dir) => b.cache_dir(dir),
        None => b.persistent(false),
    }
}

/// `n` listed stocks (no indices, none suspended) as 6-digit codes with exchange suffix.
pub fn listed_symbols(n: usize) -> Vec<String> {
    MockUpstream::listed_keys()
        .into_iter()
        .filter(|k| {
            let code: u64 = k[2..].parse().unwrap();
            !["sh000001", "sz399001", "sh000300"].contains(&k.as_str()) && !code.is_multiple_of(97)
        })
        .take(n)
        .collect()
}
