//! Eastmoney push2 `ulist.np`: JSON (or JSONP with `cb=`), `secid = market.code` with
//! market 1 for Shanghai and 0 for Shenzhen and Beijing. Volumes in lots, amounts in yuan;
//! a value of `"-"` means missing.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{num, Parsed};
use crate::calendar::exchange_tz;
use crate::quote::RawQuote;
use crate::symbol::{Exchange, Symbol};
use crate::transport::HttpRequest;

const FIELDS: &str = "f2,f3,f4,f5,f6,f12,f13,f14,f15,f16,f17,f18,f124";

pub fn secid(symbol: &Symbol) -> String {
    let market = match symbol.exchange() {
        Exchange::Shanghai => 1,
        Exchange::Shenzhen | Exchange::Beijing => 0,
    };
    format!("{market}.{}", symbol.code())
}

pub fn request(base: &str, symbols: &[Symbol]) -> HttpRequest {
    let secids = symbols.iter().map(secid).collect::<Vec<_>>().join(",");
    HttpRequest {
        url: format!("{base}/api/qt/ulist.np/get?fltt=2&invt=2&fields={FIELDS}&secids={secids}"),
        headers: Vec::new(),
        max_body: super::answer_bound(symbols.len()),
    }
}

pub fn parse(body: &[u8]) -> Result<Vec<Parsed>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    // JSONP (`cb=name`) wraps the object as `name({...});`.
    let json = match (text.find('{'), text.rfind('}')) {
        (Some(a), Some(b)) if a < b => &text[a..=b],
        _ => return Err(format!("no JSON object in a {}-byte answer", body.len())),
    };
    let root: Value = serde_json::from_str(json).map_err(|e| format!("bad JSON: {e}"))?;
    if let Some(rc) = root.get("rc").and_then(Value::as_i64).filter(|rc| *rc != 0) {
        return Err(format!("rc={rc}"));
    }
    let diff = match root.get("data") {
        Some(Value::Null) => return Ok(Vec::new()),
        Some(data) => data.get("diff"),
        None => return Err("no data field".to_string()),
    };
    let items: Vec<&Value> = match diff {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(items)) => items.values().collect(), // `{"0": {...}, "1": {...}}`
        _ => Vec::new(),
    };
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let r = record(item)?;
            Some((r.symbol?, Ok(r)))
        })
        .collect())
}

/// A number, `None` when missing (absent, null, `"-"`), NaN when not a number.
fn field(item: &Value, name: &str) -> Option<f64> {
    match item.get(name)? {
        Value::Number(n) => Some(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => num(s),
        Value::Null => None,
        _ => Some(f64::NAN),
    }
}

fn record(item: &Value) -> Option<RawQuote> {
    let code = match item.get("f12")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => format!("{:06}", n.as_u64()?),
        _ => return None,
    };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let exchange = match item.get("f13").and_then(Value::as_i64)? {
        1 => Exchange::Shanghai,
        0 if Exchange::infer(&code).unwrap_or(Exchange::Shenzhen) == Exchange::Beijing => {
            Exchange::Beijing
        }
        0 => Exchange::Shenzhen,
        _ => return None,
    };
    // `checked_add_offset`, not `naive_local`: the last hours chrono holds have no local time.
    let time = field(item, "f124")
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs as i64, 0))
        .and_then(|t| t.naive_utc().checked_add_offset(exchange_tz()));
    Some(RawQuote {
        symbol: Some(Symbol::new(exchange, &code)?),
        name: item
            .get("f14")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        price: field(item, "f2"),
        prev_close: field(item, "f18"),
        open: field(item, "f17"),
        high: field(item, "f15"),
        low: field(item, "f16"),
        volume: field(item, "f5").map(|lots| lots * 100.0),
        amount: field(item, "f6"),
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The well-formed records only.
    fn parse(body: &[u8]) -> Result<Vec<RawQuote>, String> {
        super::super::well_formed(super::parse(body))
    }

    const SAMPLE: &str = r#"{"rc":0,"rt":11,"svr":181735,"lt":1,"full":1,"dlmkts":"","data":{"total":2,"diff":[
        {"f2":9.05,"f3":-0.66,"f4":-0.06,"f5":512703,"f6":465159863.0,"f12":"600000","f13":1,"f14":"浦发银行","f15":9.15,"f16":9.03,"f17":9.09,"f18":9.11,"f124":1787297698},
        {"f2":"-","f3":"-","f4":"-","f5":0,"f6":0.0,"f12":"000097","f13":0,"f14":"停牌股份","f15":"-","f16":"-","f17":"-","f18":12.5,"f124":1787297698}]}}"#;

    #[test]
    fn parses_plain_json() {
        let quotes = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(quotes.len(), 2);
        let q = &quotes[0];
        assert_eq!(q.symbol.unwrap().key(), "sh600000");
        assert_eq!(q.price, Some(9.05));
        assert_eq!(q.volume, Some(51_270_300.0));
        assert_eq!(q.amount, Some(465159863.0));
        assert_eq!(q.time.unwrap().to_string(), "2026-08-21 15:34:58");
        let s = &quotes[1];
        assert_eq!(s.symbol.unwrap().key(), "sz000097");
        assert_eq!((s.price, s.open, s.prev_close), (None, None, Some(12.5)));
    }

    #[test]
    fn parses_jsonp_and_null_data() {
        let jsonp = format!("jQuery123({SAMPLE});");
        assert_eq!(parse(jsonp.as_bytes()).unwrap().len(), 2);
        assert_eq!(parse(br#"{"rc":0,"data":null}"#).unwrap(), vec![]);
        assert!(parse(b"nothing here").is_err());
        assert!(parse(br#"{"rc":102,"data":null}"#).is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
        // Odd records are skipped, never a panic.
        let odd = br#"{"rc":0,"data":{"diff":[{"f12":"","f13":0},{"f12":"-","f13":0},{"f12":"60000x","f13":1},
            {"f12":12,"f13":0,"f18":1.0,"f14":"x"},{"f12":"600000","f13":7},{"f13":1},{"f12":"600000"}]}}"#;
        let quotes = parse(odd).unwrap();
        assert_eq!(quotes.len(), 1);
        assert_eq!(quotes[0].symbol.unwrap().key(), "sz000012");
    }

    #[test]
    fn beijing_and_index_secids() {
        let bj = Symbol::parse("bj430017").unwrap();
        assert_eq!(secid(&bj), "0.430017");
        assert_eq!(secid(&Symbol::parse("sh000001").unwrap()), "1.000001");
        let body = r#"{"rc":0,"data":{"diff":{"0":{"f2":1.0,"f12":"430017","f13":0,"f14":"星昊医药","f18":1.0}}}}"#;
        assert_eq!(parse(body.as_bytes()).unwrap()[0].symbol, Some(bj));
        let r = request("http://e", &[bj]);
        assert!(
            r.url.starts_with("http://e/api/qt/ulist.np/get?"),
            "{}",
            r.url
        );
        assert!(
            r.url.contains("secids=0.430017") && r.url.contains("fltt=2"),
            "{}",
            r.url
        );
    }

    /// Found by review while writing the fuzz targets: an `f124` in the last 8 hours chrono
    /// holds has no exchange-local time, and reading it panicked.
    #[test]
    fn quote_times_at_the_ends_of_time_are_no_panic() {
        let now = Utc::now();
        for secs in ["8210266876799", "8210266850000", "-8334601228800"] {
            let body = format!(
                r#"{{"rc":0,"data":{{"diff":[{{"f2":9.0,"f5":1,"f6":9.0,"f12":"600000","f13":1,
                "f14":"x","f18":9.0,"f124":{secs}}}]}}}}"#
            );
            assert_eq!(parse(body.as_bytes()).unwrap().len(), 1, "{secs}");
            let answers = crate::Provider::Eastmoney
                .answers(body.as_bytes(), now, crate::MarketPhase::Trading)
                .unwrap();
            let quote = answers[0].1.as_ref().unwrap();
            assert!(serde_json::to_string(quote).is_ok(), "{secs}");
        }
    }
}
