//! The exchange calendar and the cache's time-to-live policy.
//!
//! All of it runs on the exchange clock (UTC+8, no daylight saving), computed from a UTC
//! instant passed in as a value: the machine's local time zone is never consulted, and every
//! boundary is a plain unit test.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

/// The exchanges' clock: UTC+8 all year.
pub fn exchange_tz() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// Weekday closures announced by the Shanghai and Shenzhen exchanges.
const OFFICIAL_CLOSURES: &[(i32, u32, &[u32])] = &[
    (2024, 1, &[1]),
    (2024, 2, &[9, 12, 13, 14, 15, 16]),
    (2024, 4, &[4, 5]),
    (2024, 5, &[1, 2, 3]),
    (2024, 6, &[10]),
    (2024, 9, &[16, 17]),
    (2024, 10, &[1, 2, 3, 4, 7]),
    (2025, 1, &[1, 28, 29, 30, 31]),
    (2025, 2, &[3, 4]),
    (2025, 4, &[4]),
    (2025, 5, &[1, 2, 5]),
    (2025, 6, &[2]),
    (2025, 10, &[1, 2, 3, 6, 7, 8]),
    (2026, 1, &[1, 2]),
    (2026, 2, &[16, 17, 18, 19, 20, 23]),
    (2026, 4, &[6]),
    (2026, 5, &[1, 4, 5]),
    (2026, 6, &[19]),
    (2026, 9, &[25]),
    (2026, 10, &[1, 2, 5, 6, 7]),
];

/// Years for which [`OFFICIAL_CLOSURES`] holds the full list.
const KNOWN_YEARS: std::ops::RangeInclusive<i32> = 2024..=2026;

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("valid time")
}

/// Where the market is in its day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketPhase {
    /// A trading day, before the opening call auction (before 09:15).
    PreOpen,
    /// Opening call auction, 09:15 to 09:30.
    OpeningAuction,
    /// Continuous trading, 09:30-11:30 and 13:00-14:57.
    Trading,
    /// The midday break, 11:30 to 13:00.
    LunchBreak,
    /// Closing call auction, 14:57 to 15:00.
    ClosingAuction,
    /// A trading day after 15:00.
    AfterClose,
    /// A weekend or an exchange holiday.
    Closed,
}

impl MarketPhase {
    /// Whether prices can move in this phase (auctions and continuous trading).
    pub fn in_session(self) -> bool {
        matches!(
            self,
            MarketPhase::OpeningAuction | MarketPhase::Trading | MarketPhase::ClosingAuction
        )
    }

    /// The phase's name as serialised: `trading`, `lunch_break`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            MarketPhase::PreOpen => "pre_open",
            MarketPhase::OpeningAuction => "opening_auction",
            MarketPhase::Trading => "trading",
            MarketPhase::LunchBreak => "lunch_break",
            MarketPhase::ClosingAuction => "closing_auction",
            MarketPhase::AfterClose => "after_close",
            MarketPhase::Closed => "closed",
        }
    }
}

/// Which trading days the exchanges are open: weekdays minus the official closures
/// (2024-2026 shipped) plus any dates the user adds.
#[derive(Debug, Clone)]
pub struct MarketCalendar {
    closures: BTreeSet<NaiveDate>,
}

impl Default for MarketCalendar {
    fn default() -> Self {
        let closures = OFFICIAL_CLOSURES
            .iter()
            .flat_map(|(y, m, days)| {
                days.iter()
                    .filter_map(move |d| NaiveDate::from_ymd_opt(*y, *m, *d))
            })
            .collect();
        MarketCalendar { closures }
    }
}

impl MarketCalendar {
    /// Adds closure dates (for a year not shipped yet, or an unscheduled closure).
    pub fn add_closures(&mut self, dates: impl IntoIterator<Item = NaiveDate>) {
        self.closures.extend(dates);
    }

    /// Whether the exchanges trade on this date (exchange-local).
    pub fn is_trading_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.closures.contains(&date)
    }

    /// Whether closures are known for this date's year: shipped (2024-2026) or added by the
    /// user. Outside them weekdays count as open.
    pub fn covers(&self, date: NaiveDate) -> bool {
        let year = date.year();
        KNOWN_YEARS.contains(&year) || self.closures.iter().any(|d| d.year() == year)
    }

    /// The market phase at an instant.
    pub fn phase(&self, at: DateTime<Utc>) -> MarketPhase {
        let local = at.with_timezone(&exchange_tz());
        if !self.is_trading_day(local.date_naive()) {
            return MarketPhase::Closed;
        }
        let t = local.time();
        if t < hm(9, 15) {
            MarketPhase::PreOpen
        } else if t < hm(9, 30) {
            MarketPhase::OpeningAuction
        } else if t < hm(11, 30) {
            MarketPhase::Trading
        } else if t < hm(13, 0) {
            MarketPhase::LunchBreak
        } else if t < hm(14, 57) {
            MarketPhase::Trading
        } else if t < hm(15, 0) {
            MarketPhase::ClosingAuction
        } else {
            MarketPhase::AfterClose
        }
    }

    /// The first instant strictly after `at` when a session (09:15 or 13:00 on a trading day)
    /// starts. Looks ahead at most a year; `None` only for a calendar closed that long.
    pub fn next_session_start(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tz = exchange_tz();
        let local = at.with_timezone(&tz);
        let mut date = local.date_naive();
        for _ in 0..366 {
            if self.is_trading_day(date) {
                for start in [hm(9, 15), hm(13, 0)] {
                    let instant = tz.from_local_datetime(&date.and_time(start)).single()?;
                    if instant > local {
                        return Some(instant.with_timezone(&Utc));
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// When the last session before `at` ended (11:30 or 15:00 on a trading day).
    fn last_session_end(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tz = exchange_tz();
        let local = at.with_timezone(&tz);
        let mut date = local.date_naive();
        for _ in 0..366 {
            if self.is_trading_day(date) {
                for end in [hm(15, 0), hm(11, 30)] {
                    let instant = tz.from_local_datetime(&date.and_time(end)).single()?;
                    if instant <= local {
                        return Some(instant.with_timezone(&Utc));
                    }
                }
            }
            date = date.pred_opt()?;
        }
        None
    }
}

/// How long a cached quote stays fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtlMode {
    /// `trading` TTL during sessions, `closed` TTL outside (the v2.2.9 plan: 30 s and 60 s).
    Fixed,
    /// As `Fixed` during sessions; a quote fetched once the market has settled after a close
    /// (lunch or end of day) stays fresh until the next session opens.
    UntilNextOpen,
}

/// The TTL policy: the mode and the two TTLs. A quote never stays fresh past the start of
/// the next session, whatever the TTLs say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// Fixed TTLs, or until the next open after a settled close.
    pub mode: TtlMode,
    /// The TTL during trading sessions.
    pub trading: Duration,
    /// The TTL outside them.
    pub closed: Duration,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        TtlPolicy {
            mode: TtlMode::Fixed,
            trading: Duration::from_secs(30),
            closed: Duration::from_secs(60),
        }
    }
}

/// How long after a close quotes are taken as final (the exchanges publish the closing
/// auction result a little after 15:00).
pub const SETTLE_DELAY: Duration = Duration::from_secs(5 * 60);

/// Clock skew tolerated for entries written by another process.
const FUTURE_TOLERANCE: Duration = Duration::from_secs(60);

impl TtlPolicy {
    /// The instant a quote fetched at `fetched` stops being fresh.
    pub fn expiry(&self, calendar: &MarketCalendar, fetched: DateTime<Utc>) -> DateTime<Utc> {
        let phase = calendar.phase(fetched);
        let next_open = calendar.next_session_start(fetched);
        let ttl = if phase.in_session() {
            self.trading
        } else {
            self.closed
        };
        let by_ttl = (chrono::Duration::from_std(ttl).ok())
            .and_then(|ttl| fetched.checked_add_signed(ttl))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let settled = calendar.last_session_end(fetched).is_some_and(|end| {
            fetched - end >= chrono::Duration::from_std(SETTLE_DELAY).unwrap_or_default()
        });
        match (self.mode, next_open) {
            (TtlMode::UntilNextOpen, Some(open)) if !phase.in_session() && settled => open,
            (_, Some(open)) => by_ttl.min(open),
            (_, None) => by_ttl,
        }
    }

    /// Whether a quote fetched at `fetched` is still fresh at `now`.
    pub fn is_fresh(
        &self,
        calendar: &MarketCalendar,
        fetched: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        Self::fresh_until(fetched, self.expiry(calendar, fetched), now)
    }

    /// The same check with the expiry already computed (the memory tier stores it).
    /// An entry stamped in the future (another machine's clock) is stale.
    pub fn fresh_until(fetched: DateTime<Utc>, expiry: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let skew = chrono::Duration::from_std(FUTURE_TOLERANCE).unwrap_or_default();
        fetched <= now + skew && now < expiry
    }

    /// The TTL a quote fetched at `now` gets, in whole seconds.
    pub fn ttl_at(&self, calendar: &MarketCalendar, now: DateTime<Utc>) -> u64 {
        (self.expiry(calendar, now) - now).num_seconds().max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instant given in exchange time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        exchange_tz()
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn phases_at_every_boundary() {
        let cal = MarketCalendar::default();
        // 2026-11-30 is a Monday.
        let cases = [
            ((9, 14, 59), MarketPhase::PreOpen),
            ((9, 15, 0), MarketPhase::OpeningAuction),
            ((9, 29, 59), MarketPhase::OpeningAuction),
            ((9, 30, 0), MarketPhase::Trading),
            ((11, 29, 59), MarketPhase::Trading),
            ((11, 30, 0), MarketPhase::LunchBreak),
            ((12, 59, 59), MarketPhase::LunchBreak),
            ((13, 0, 0), MarketPhase::Trading),
            ((14, 56, 59), MarketPhase::Trading),
            ((14, 57, 0), MarketPhase::ClosingAuction),
            ((14, 59, 59), MarketPhase::ClosingAuction),
            ((15, 0, 0), MarketPhase::AfterClose),
            ((23, 59, 59), MarketPhase::AfterClose),
            ((0, 0, 0), MarketPhase::PreOpen),
        ];
        for ((h, m, s), want) in cases {
            assert_eq!(cal.phase(at(2026, 11, 30, h, m, s)), want, "{h}:{m}:{s}");
        }
    }

    #[test]
    fn uses_utc_plus_8_not_local_time() {
        let cal = MarketCalendar::default();
        // 01:30 UTC on a Monday is 09:30 in Shanghai.
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 1, 30, 0).unwrap();
        assert_eq!(cal.phase(t), MarketPhase::Trading);
        // 16:00 UTC Sunday is 00:00 Monday in Shanghai.
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 16, 0, 0).unwrap();
        assert_eq!(cal.phase(t), MarketPhase::PreOpen);
    }

    #[test]
    fn weekends_and_holidays_are_closed() {
        let cal = MarketCalendar::default();
        assert_eq!(cal.phase(at(2026, 11, 28, 10, 0, 0)), MarketPhase::Closed); // Saturday
        assert_eq!(cal.phase(at(2026, 11, 29, 10, 0, 0)), MarketPhase::Closed); // Sunday
        for (y, m, d) in [
            (2024, 2, 9),
            (2025, 1, 28),
            (2025, 10, 8),
            (2026, 2, 23),
            (2026, 9, 25),
            (2026, 10, 7),
        ] {
            assert_eq!(
                cal.phase(at(y, m, d, 10, 0, 0)),
                MarketPhase::Closed,
                "{y}-{m}-{d}"
            );
        }
        // The Saturday make-up working day before National Day 2026 is still closed.
        assert_eq!(cal.phase(at(2026, 10, 10, 10, 0, 0)), MarketPhase::Closed);
        assert_eq!(cal.phase(at(2026, 10, 8, 10, 0, 0)), MarketPhase::Trading);
        assert!(cal.covers(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()));
        assert!(!cal.covers(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
    }

    #[test]
    fn user_closures_apply() {
        let mut cal = MarketCalendar::default();
        let day = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert!(cal.is_trading_day(day));
        assert!(!cal.covers(day));
        cal.add_closures([day]);
        assert!(!cal.is_trading_day(day));
        assert!(
            cal.covers(day),
            "a year with user closures counts as covered"
        );
    }

    #[test]
    fn next_session_start_skips_lunch_weekends_and_holidays() {
        let cal = MarketCalendar::default();
        assert_eq!(
            cal.next_session_start(at(2026, 11, 30, 11, 45, 0)),
            Some(at(2026, 11, 30, 13, 0, 0))
        );
        assert_eq!(
            cal.next_session_start(at(2026, 11, 30, 9, 15, 0)),
            Some(at(2026, 11, 30, 13, 0, 0))
        );
        assert_eq!(
            cal.next_session_start(at(2026, 11, 27, 16, 0, 0)),
            Some(at(2026, 11, 30, 9, 15, 0))
        );
        // Friday 2026-09-25 is a holiday, so Thursday evening waits until Monday the 28th.
        assert_eq!(
            cal.next_session_start(at(2026, 9, 24, 15, 30, 0)),
            Some(at(2026, 9, 28, 9, 15, 0))
        );
    }

    #[test]
    fn fixed_ttls_follow_the_phase_and_stop_at_the_open() {
        let cal = MarketCalendar::default();
        let p = TtlPolicy::default();
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 30, 10, 0, 0)), 30);
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 30, 12, 0, 0)), 60);
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 30, 20, 0, 0)), 60);
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 29, 10, 0, 0)), 60);
        // Ten seconds before the open: fresh only until the open.
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 30, 9, 14, 50)), 10);
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 30, 12, 59, 30)), 30);
        // A quote fetched in session keeps its 30 s even across 11:30.
        let fetched = at(2026, 11, 30, 11, 29, 50);
        assert!(p.is_fresh(&cal, fetched, at(2026, 11, 30, 11, 30, 19)));
        assert!(!p.is_fresh(&cal, fetched, at(2026, 11, 30, 11, 30, 20)));
    }

    #[test]
    fn until_next_open_keeps_settled_quotes() {
        let cal = MarketCalendar::default();
        let p = TtlPolicy {
            mode: TtlMode::UntilNextOpen,
            ..TtlPolicy::default()
        };
        // Friday after the settle delay: fresh until Monday 09:15.
        let fetched = at(2026, 11, 27, 15, 5, 0);
        assert_eq!(p.expiry(&cal, fetched), at(2026, 11, 30, 9, 15, 0));
        assert!(p.is_fresh(&cal, fetched, at(2026, 11, 30, 9, 14, 59)));
        assert!(!p.is_fresh(&cal, fetched, at(2026, 11, 30, 9, 15, 0)));
        // Right after the close the quote may not be final yet: the closed TTL applies.
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 27, 15, 1, 0)), 60);
        // During the session nothing changes.
        assert_eq!(p.ttl_at(&cal, at(2026, 11, 27, 10, 0, 0)), 30);
        // Lunch, once settled, lasts until 13:00.
        assert_eq!(
            p.expiry(&cal, at(2026, 11, 27, 11, 40, 0)),
            at(2026, 11, 27, 13, 0, 0)
        );
    }

    #[test]
    fn huge_ttls_do_not_overflow() {
        let cal = MarketCalendar::default();
        let p = TtlPolicy {
            trading: Duration::MAX,
            closed: Duration::MAX,
            ..TtlPolicy::default()
        };
        let weekend = at(2026, 11, 29, 10, 0, 0);
        assert_eq!(p.expiry(&cal, weekend), at(2026, 11, 30, 9, 15, 0));
        let far = DateTime::<Utc>::MAX_UTC - chrono::Duration::days(1);
        assert!(p.expiry(&cal, far) >= far);
        assert!(p.ttl_at(&cal, weekend) > 0);
    }

    #[test]
    fn entries_from_the_future_are_stale() {
        let cal = MarketCalendar::default();
        let p = TtlPolicy::default();
        let now = at(2026, 11, 30, 10, 0, 0);
        assert!(!p.is_fresh(&cal, now + chrono::Duration::hours(1), now));
        assert!(p.is_fresh(&cal, now - chrono::Duration::seconds(29), now));
        assert!(!p.is_fresh(&cal, now - chrono::Duration::seconds(30), now));
    }
}
