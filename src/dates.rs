//! Dates and times read by hand: `YYYY-MM-DD` and RFC 3339 (`2026-11-30T10:00:01.5+08:00`),
//! as chrono's serde writes them. chrono's own readers go through its format parser, which
//! is tens of kilobytes of the browser package; the `de_*` functions are the
//! `deserialize_with` of every date and time quantdb reads back (its records, the relay's
//! answers, the JavaScript options).

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

/// The number written in `b`, ASCII digits only (at most 9).
pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD`, any year of four digits.
pub(crate) fn iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// RFC 3339: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of up to 9 digits, then `Z` or
/// `+HH:MM` / `-HH:MM` (`t`, a space and `z` accepted too).
pub(crate) fn rfc3339(text: &str) -> Option<DateTime<FixedOffset>> {
    let b = text.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = iso_date(text.get(..10)?)?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let mut rest = &b[19..];
    let mut nanos = 0;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        nanos = digits(&tail[..n])? * 10u32.pow(9 - n as u32);
        rest = &tail[n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = digits(&[*m1, *m2]).filter(|m| *m < 60)?;
            let seconds = (digits(&[*h1, *h2])? * 60 + minutes) * 60;
            let seconds = i32::try_from(seconds).ok()?;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    let naive = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    FixedOffset::east_opt(offset)?
        .from_local_datetime(&naive)
        .single()
}

/// Reads a string with `parse`; `what` names what was expected.
struct Text<T> {
    parse: fn(&str) -> Option<T>,
    what: &'static str,
}

impl<T> Visitor<'_> for Text<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        (self.parse)(s).ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
    }
}

/// A date or a time, for the containers below.
struct Read<T>(T);

impl<'de> Deserialize<'de> for Read<NaiveDate> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Text {
            parse: iso_date,
            what: "a date YYYY-MM-DD",
        };
        d.deserialize_str(text).map(Read)
    }
}

impl<'de> Deserialize<'de> for Read<DateTime<FixedOffset>> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Text {
            parse: rfc3339,
            what: "an RFC 3339 time",
        };
        d.deserialize_str(text).map(Read)
    }
}

pub(crate) fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    Read::<NaiveDate>::deserialize(d).map(|r| r.0)
}

pub(crate) fn de_datetime<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<DateTime<FixedOffset>, D::Error> {
    Read::<DateTime<FixedOffset>>::deserialize(d).map(|r| r.0)
}

pub(crate) fn de_opt_datetime<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<FixedOffset>>, D::Error> {
    Option::<Read<DateTime<FixedOffset>>>::deserialize(d).map(|o| o.map(|r| r.0))
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn de_opt_dates<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<NaiveDate>>, D::Error> {
    let dates = Option::<Vec<Read<NaiveDate>>>::deserialize(d)?;
    Ok(dates.map(|v| v.into_iter().map(|r| r.0).collect()))
}

pub(crate) fn de_date_rows<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(NaiveDate, f64)>, D::Error> {
    let rows = Vec::<(Read<NaiveDate>, f64)>::deserialize(d)?;
    Ok(rows.into_iter().map(|(date, f)| (date.0, f)).collect())
}

pub(crate) fn de_date_ranges<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(NaiveDate, NaiveDate)>, D::Error> {
    let ranges = Vec::<(Read<NaiveDate>, Read<NaiveDate>)>::deserialize(d)?;
    Ok(ranges.into_iter().map(|(a, b)| (a.0, b.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever chrono writes, read back to the same value: every offset form, every fraction.
    #[test]
    fn reads_what_chrono_writes() {
        let tz = |h: i32| FixedOffset::east_opt(h * 3600).unwrap();
        let times = [
            tz(8).with_ymd_and_hms(2026, 11, 30, 10, 0, 1).unwrap(),
            tz(0).with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
            tz(-5).with_ymd_and_hms(2024, 2, 29, 0, 0, 0).unwrap(),
        ];
        for t in times {
            for nanos in [0, 5_000_000, 123_456_000, 123_456_789, 1] {
                let t = t + chrono::Duration::nanoseconds(nanos);
                let json = serde_json::to_string(&t).unwrap();
                let text: String = serde_json::from_str(&json).unwrap();
                assert_eq!(rfc3339(&text), Some(t), "{text}");
                let read: DateTime<FixedOffset> =
                    de_datetime(&mut serde_json::Deserializer::from_str(&json)).unwrap();
                assert_eq!(read, t);
            }
        }
        let utc = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(rfc3339(&utc.to_rfc3339()), Some(utc.fixed_offset()));
        assert_eq!(rfc3339("2026-01-02T03:04:05Z"), Some(utc.fixed_offset()));
        assert_eq!(rfc3339("2026-01-02 03:04:05z"), Some(utc.fixed_offset()));
        for d in ["2024-02-29", "0001-01-01", "9999-12-31"] {
            let date = iso_date(d).unwrap();
            assert_eq!(date.to_string(), d);
            let json = serde_json::to_string(&date).unwrap();
            assert_eq!(
                de_date(&mut serde_json::Deserializer::from_str(&json)).unwrap(),
                date
            );
        }
    }

    #[test]
    fn refuses_what_is_not_one_and_never_panics() {
        for bad in [
            "",
            "2024-02-30",
            "2024-2-01",
            "20240201",
            "2024-02-01x",
            "+2024-02-01",
            "2024-02-01 ",
            "١٢٣٤-٠١-٠١",
            "2024-02-01é",
        ] {
            assert_eq!(iso_date(bad), None, "{bad:?}");
        }
        for bad in [
            "2026-11-30T10:00:01",
            "2026-11-30T10:00:01+0800",
            "2026-11-30T10:00:01+08",
            "2026-11-30T24:00:00+08:00",
            "2026-11-30T10:00:01.+08:00",
            "2026-11-30T10:00:01.1234567890+08:00",
            "2026-11-30T10:00:01+24:00",
            "2026-11-30X10:00:01+08:00",
            "2026-11-30T10:00:01+08:00 ",
            "2026-11-30T10:0é:01+08:00",
            "2026-11-30T10:00:01-00:60",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad:?}");
        }
        let e = de_date(&mut serde_json::Deserializer::from_str("\"2024/01/02\"")).unwrap_err();
        assert!(e.to_string().contains("a date YYYY-MM-DD"), "{e}");
        assert!(de_date(&mut serde_json::Deserializer::from_str("20240102")).is_err());
    }
}
