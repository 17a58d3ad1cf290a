//! A quantdb relay (`quantdb serve`): `GET /api/v1/realtime?symbols=sh600000,sz000001`,
//! answered with the library's own JSON, one entry per symbol: a quote or its error.

use super::{joined_keys, Answers};
use crate::error::Error;
use crate::quote::{BatchEntry, CacheSource};
use crate::symbol::Symbol;
use crate::transport::HttpRequest;

pub fn request(base: &str, symbols: &[Symbol]) -> HttpRequest {
    HttpRequest {
        url: format!("{base}/api/v1/realtime?symbols={}", joined_keys(symbols)),
        headers: Vec::new(),
        max_body: super::answer_bound(symbols.len()),
    }
}

/// The relay's quotes keep their own fetch time, so TTLs count from when the relay asked the
/// upstream; its per-symbol errors keep their codes. An entry that is not a quote or an error
/// is that symbol's parse error: one bad entry never spoils the others.
pub fn parse(body: &[u8]) -> Result<Answers, String> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("not a relay answer: {e}"))?;
    Ok(entries
        .into_iter()
        .filter_map(|value| {
            let symbol = || {
                let s = value.get("symbol")?.as_str()?;
                let exchange = value.get("exchange").and_then(|e| e.as_str());
                Symbol::parse(&format!(
                    "{s}{}",
                    exchange.map_or(String::new(), |e| format!(".{e}"))
                ))
                .or_else(|_| Symbol::parse(s))
                .ok()
            };
            match serde_json::from_value::<BatchEntry>(value.clone()) {
                Ok(BatchEntry::Quote(q)) => {
                    Some((q.key()?, Ok(q.served_from(CacheSource::Network))))
                }
                Ok(BatchEntry::Error(e)) => Some((
                    Symbol::parse(&e.symbol).ok()?,
                    Err(Error::relayed(&e.code, e.error)),
                )),
                Err(e) => Some((
                    symbol()?,
                    Err(Error::Parse {
                        provider: "relay".into(),
                        message: format!("unreadable entry: {e}"),
                    }),
                )),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unreadable_entry_is_that_symbols_error() {
        let good = r#"{"symbol":"600000","exchange":"SH","name":"x","current_price":9.05,"change":-0.06,
             "change_percent":-0.66,"open":9.09,"high":9.15,"low":9.03,"prev_close":9.11,"volume":1,
             "amount":9.0,"quote_time":null,"timestamp":"2026-08-21T15:35:00.250+08:00",
             "cache_hit":false,"cache_source":"network","source":"sina","market_status":"trading"}"#;
        let bad = good
            .replace("600000", "000001")
            .replace("\"SH\"", "\"SZ\"")
            .replace("-0.06", "null");
        let body = format!("[{good},{bad},{{\"what\":1}}]");
        let answers = parse(body.as_bytes()).unwrap();
        assert_eq!(answers.len(), 2);
        assert!(answers[0].1.is_ok());
        assert_eq!(answers[1].0.key(), "sz000001");
        assert_eq!(answers[1].1.as_ref().unwrap_err().code(), "parse_error");
    }

    #[test]
    fn reads_quotes_and_errors() {
        let body = br#"[
            {"symbol":"600000","exchange":"SH","name":"\u6d66\u53d1\u94f6\u884c","current_price":9.05,"change":-0.06,
             "change_percent":-0.66,"open":9.09,"high":9.15,"low":9.03,"prev_close":9.11,"volume":51270289,
             "amount":465159863.0,"quote_time":"2026-08-21T15:34:58+08:00","timestamp":"2026-08-21T15:35:00.250+08:00",
             "cache_hit":true,"cache_source":"memory","source":"sina","market_status":"after_close"},
            {"symbol":"sh603999","error":"symbol sh603999 is not known to any upstream","code":"not_found"},
            {"symbol":"sz000002","error":"odd","code":"something_new"}
        ]"#;
        let answers = parse(body).unwrap();
        assert_eq!(answers.len(), 3);
        let (s, q) = &answers[0];
        let q = q.as_ref().unwrap();
        assert_eq!(
            (s.key(), q.name.as_str(), q.cache_hit),
            ("sh600000".to_string(), "浦发银行", false)
        );
        assert_eq!(q.cache_source, CacheSource::Network);
        assert_eq!(q.timestamp.to_rfc3339(), "2026-08-21T15:35:00.250+08:00");
        let err = answers[1].1.as_ref().unwrap_err();
        assert_eq!(
            (err.code(), err.to_string().contains("sh603999")),
            ("not_found", true)
        );
        assert_eq!(answers[2].1.as_ref().unwrap_err().code(), "upstream_error");
        assert!(parse(b"<html>").is_err());
        assert!(parse(b"{\"error\":\"x\"}").is_err());
    }

    #[test]
    fn asks_with_unambiguous_keys() {
        let r = request(
            "http://relay",
            &[
                Symbol::parse("sh000001").unwrap(),
                Symbol::parse("000001").unwrap(),
            ],
        );
        assert_eq!(
            r.url,
            "http://relay/api/v1/realtime?symbols=sh000001,sz000001"
        );
    }
}
