//! The upstreams. Each is a pure request builder plus a parser: no I/O happens here.

mod eastmoney;
mod relay;
mod sina;
mod tencent;

use chrono::{DateTime, Utc};

use crate::calendar::MarketPhase;
use crate::error::Error;
use crate::quote::{Quote, RawQuote};
use crate::symbol::Symbol;
use crate::transport::HttpRequest;

pub use crate::upstream::Provider;

/// What one upstream answer carries: a quote or an error for each symbol in it.
pub type Answers = Vec<(Symbol, Result<Quote, Error>)>;

/// What a parser read for one symbol: its fields, or why its record is malformed.
pub(crate) type Parsed = (Symbol, Result<RawQuote, String>);

impl Provider {
    /// The request for these symbols against `base_url` (no trailing slash needed).
    pub fn request(self, base_url: &str, symbols: &[Symbol]) -> HttpRequest {
        let base = base_url.trim_end_matches('/');
        match self {
            Provider::Sina => sina::request(base, symbols),
            Provider::Tencent => tencent::request(base, symbols),
            Provider::Eastmoney => eastmoney::request(base, symbols),
            Provider::Relay => relay::request(base, symbols),
        }
    }

    /// Reads an answer body: one answer per symbol it carries, a quote or (from a relay) that
    /// symbol's error, mapped to quotes the same way for every upstream. Symbols an upstream
    /// does not know are simply absent; a body that is not this provider's format is an error.
    pub fn answers(
        self,
        body: &[u8],
        fetched_at: DateTime<Utc>,
        phase: MarketPhase,
    ) -> Result<Answers, Error> {
        let parse_error = |message| Error::Parse {
            provider: self.name().to_string(),
            message,
        };
        let raw = match self {
            Provider::Sina => sina::parse(body),
            Provider::Tencent => tencent::parse(body),
            Provider::Eastmoney => eastmoney::parse(body),
            Provider::Relay => return relay::parse(body).map_err(parse_error),
        }
        .map_err(parse_error)?;
        // A malformed record is that symbol's parse error (the next provider is asked for
        // it); a record with no previous close (a delisted listing) is no quote: not found.
        Ok(raw
            .into_iter()
            .filter_map(|(symbol, raw)| {
                let quote = raw
                    .and_then(|r| r.check().map(|()| r))
                    .map(|r| r.into_quote(self, fetched_at, phase));
                match quote {
                    Ok(q) => Some((symbol, Ok(q?))),
                    Err(why) => Some((symbol, Err(parse_error(format!("{symbol}: {why}"))))),
                }
            })
            .collect())
    }
}

/// `sh600000,sz000001`
/// The most an upstream can legitimately send for `n` symbols: a record is well under 1 KiB.
/// A larger answer is refused before it grows the process.
fn answer_bound(n: usize) -> usize {
    16 * 1024 + n * 1024
}

fn joined_keys(symbols: &[Symbol]) -> String {
    symbols
        .iter()
        .map(Symbol::key)
        .collect::<Vec<_>>()
        .join(",")
}

/// A number, or `None` for empty, `-` and anything non-numeric or non-finite.
/// A number field: `None` when missing (empty, or Eastmoney's `-`), NaN when it is there but
/// not a number (so the record's check refuses it rather than taking it as missing).
fn num(field: &str) -> Option<f64> {
    match field.trim() {
        "" | "-" => None,
        text => Some(text.parse::<f64>().unwrap_or(f64::NAN)),
    }
}

/// [`num`] on raw bytes (numeric fields are ASCII even in a GBK body).
fn num_bytes(field: &[u8]) -> Option<f64> {
    num(std::str::from_utf8(field).ok()?)
}

/// The unsigned integer written by the ASCII digits at `range` of `text`.
fn digits_at(text: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    let digits = text.get(range)?;
    digits.iter().try_fold(0u32, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
    })
}

/// A date and time from its six parts, each read by [`digits_at`].
fn date_time(parts: [Option<u32>; 6]) -> Option<chrono::NaiveDateTime> {
    let [y, mo, d, h, mi, s] = parts;
    chrono::NaiveDate::from_ymd_opt(y? as i32, mo?, d?)?.and_hms_opt(h?, mi?, s?)
}

/// The `PREFIXkey="value"` statements of a Sina or Tencent body, in order, undecoded.
/// Splitting GBK bytes on `;`, `=` and `"` is safe: no GBK trail byte takes those values.
/// The `<prefix><key>="<value>"` statements of a body separated by `;`. A statement that is
/// not one (a body cut short, or not this upstream's format) is an error: a body that is not
/// whole must not make its missing symbols look unknown.
fn assignments<'a>(body: &'a [u8], prefix: &'a [u8]) -> Result<Vec<(&'a str, &'a [u8])>, String> {
    let mut out = Vec::new();
    for stmt in split_bytes(body, b';') {
        let stmt = stmt.trim_ascii();
        if stmt.is_empty() {
            continue;
        }
        let assignment = (|| {
            let rest = stmt.strip_prefix(prefix)?;
            let eq = memchr::memchr(b'=', rest)?;
            let key = std::str::from_utf8(&rest[..eq]).ok()?.trim();
            let value = rest[eq + 1..].trim_ascii_start().strip_prefix(b"\"")?;
            let end = memchr::memchr(b'"', value)?;
            value[end + 1..]
                .trim_ascii()
                .is_empty()
                .then(|| (key, &value[..end]))
        })();
        match assignment {
            Some(a) => out.push(a),
            None => {
                let shown = String::from_utf8_lossy(&stmt[..stmt.len().min(40)]).into_owned();
                return Err(format!("malformed or cut statement {shown:?}"));
            }
        }
    }
    Ok(out)
}

/// Every `PREFIXkey="value"` statement of a body read by `record`; records it cannot read are
/// left out, and a body with no such statement at all is not this upstream's answer.
/// The records of a GBK text answer. `record` reads one value: `Ok(None)` for an unknown
/// code (an empty value), an error for a malformed record.
fn records(
    body: &[u8],
    prefix: &[u8],
    record: fn(Symbol, &[u8]) -> Result<Option<RawQuote>, String>,
) -> Result<Vec<Parsed>, String> {
    let statements = assignments(body, prefix)?;
    let mut quotes = Vec::new();
    for (key, value) in &statements {
        // Other keys (`pv_none_match`, another market's codes) are not records of ours.
        let Some(symbol) = Symbol::from_key(key) else {
            continue;
        };
        if let Some(parsed) = record(symbol, value).transpose() {
            quotes.push((symbol, parsed));
        }
    }
    if statements.is_empty() {
        let prefix = String::from_utf8_lossy(prefix);
        return Err(format!(
            "no {prefix} records in a {}-byte answer",
            body.len()
        ));
    }
    Ok(quotes)
}

/// `bytes` split on `sep` (memchr finds separators many bytes at a time in large answers).
fn split_bytes(bytes: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(sep, bytes)
        .chain(std::iter::once(bytes.len()))
        .map(move |end| {
            let part = &bytes[start..end];
            start = end + 1;
            part
        })
}

/// The well-formed records of a parser's answer (for the parsers' tests).
#[cfg(test)]
fn well_formed(parsed: Result<Vec<Parsed>, String>) -> Result<Vec<RawQuote>, String> {
    parsed.map(|records| records.into_iter().filter_map(|(_, r)| r.ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_tell_missing_from_malformed() {
        assert_eq!(num("9.05"), Some(9.05));
        assert_eq!(num(" 1 "), Some(1.0));
        assert_eq!(num("-"), None);
        assert_eq!(num(""), None);
        for bad in ["NaN", "inf", "9.0x", "--"] {
            assert!(num(bad).is_some_and(|x| !x.is_finite()), "{bad}");
        }
    }

    /// What each provider makes of a record with a bad number in it, or of a body cut short.
    #[test]
    fn malformed_records_are_parse_errors_and_cut_bodies_fail_whole() {
        let now = Utc::now();
        let sina = |price: &str| {
            format!(
                "var hq_str_sh600000=\"浦发银行,9.090,9.110,{price},9.150,9.030,9.040,9.050,51270289,\
                 465159863.000,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2026-08-21,15:34:58,00\";\n\
                 var hq_str_sz000001=\"平安银行,1\";\n"
            )
        };
        let gbk = |s: &str| encoding_rs::GBK.encode(s).0.into_owned();
        for (price, ok) in [
            ("9.050", true),
            ("inf", false),
            ("nan", false),
            ("1e308", false),
        ] {
            let answers = Provider::Sina
                .answers(&gbk(&sina(price)), now, MarketPhase::Trading)
                .unwrap();
            assert_eq!(answers.len(), 2, "{price}");
            assert_eq!(answers[0].1.is_ok(), ok, "{price}: {:?}", answers[0].1);
            // The short record is that symbol's parse error, never "not found".
            assert_eq!(answers[1].1.as_ref().unwrap_err().code(), "parse_error");
        }
        let whole = gbk(&sina("9.050"));
        for cut in [whole.len() - 10, whole.len() / 2, 20] {
            let err = Provider::Sina.answers(&whole[..cut], now, MarketPhase::Trading);
            assert_eq!(err.unwrap_err().code(), "parse_error", "cut at {cut}");
        }
        // A previous close of 1e-300 makes a move no listing makes.
        let absurd = r#"{"rc":0,"data":{"diff":[{"f2":9.0,"f5":1,"f6":9.0,"f12":"600000","f13":1,
            "f14":"x","f15":9.0,"f16":9.0,"f17":9.0,"f18":1e-300}]}}"#;
        let answers = Provider::Eastmoney
            .answers(absurd.as_bytes(), now, MarketPhase::Trading)
            .unwrap();
        assert_eq!(answers[0].1.as_ref().unwrap_err().code(), "parse_error");
    }

    #[test]
    fn statements_are_found_whatever_the_separators() {
        let text = b"var hq_str_sh600000=\"a,b\";\nvar hq_str_sz000001=\"\";  \n";
        let got = assignments(text, b"var hq_str_").unwrap();
        assert_eq!(got, vec![("sh600000", &b"a,b"[..]), ("sz000001", &b""[..])]);
        // Cut inside a record, inside a key, or something else entirely: not a whole answer.
        for cut in [
            &b"var hq_str_sh600000=\"a,b\";\nvar hq_str_sz000001=\"a,"[..],
            b"var hq_str_sh600000=\"a,b\";\nvar hq_st",
            b"var hq_str_sh600000=\"a,b\"junk;",
            b"<html>",
        ] {
            assert!(assignments(cut, b"var hq_str_").is_err());
        }
    }

    #[test]
    fn byte_splitting_keeps_empty_parts() {
        let parts: Vec<&[u8]> = split_bytes(b"a,,b,", b',').collect();
        assert_eq!(parts, [&b"a"[..], b"", b"b", b""]);
        assert_eq!(split_bytes(b"", b',').count(), 1);
    }

    #[test]
    fn dates_from_digits() {
        let t = b"2026-08-21 15:34:58";
        let parts = [
            digits_at(t, 0..4),
            digits_at(t, 5..7),
            digits_at(t, 8..10),
            digits_at(t, 11..13),
            digits_at(t, 14..16),
            digits_at(t, 17..19),
        ];
        assert_eq!(date_time(parts).unwrap().to_string(), "2026-08-21 15:34:58");
        assert_eq!(digits_at(b"12x4", 0..4), None);
        assert_eq!(digits_at(b"12", 0..4), None);
        assert_eq!(
            date_time([Some(2026), Some(2), Some(30), Some(0), Some(0), Some(0)]),
            None
        );
    }

    #[test]
    fn provider_names_parse() {
        assert_eq!("Sina".parse::<Provider>().unwrap(), Provider::Sina);
        assert!("yahoo"
            .parse::<Provider>()
            .unwrap_err()
            .to_string()
            .contains("yahoo"));
    }

    #[test]
    fn base_urls_tolerate_a_trailing_slash() {
        let s = [Symbol::parse("600000").unwrap()];
        assert_eq!(
            Provider::Sina.request("http://x/", &s).url,
            "http://x/list=sh600000"
        );
        assert_eq!(
            Provider::Tencent.request("http://x", &s).url,
            "http://x/q=sh600000"
        );
    }
}
