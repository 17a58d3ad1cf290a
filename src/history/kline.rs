//! The daily-kline upstreams and the factor file: request builders and parsers, no I/O.
//!
//! - Eastmoney `push2his` `api/qt/stock/kline/get`: JSON (JSONP with `cb=`), a whole date range
//!   in one request; comma strings `date,open,close,high,low,volume,amount,amplitude,change%,
//!   change,turnover` (close before high), volume in lots.
//! - Tencent `fqkline`: JSON (or `name={...}`), `[date, open, close, high, low, volume]` rows
//!   in lots (in shares on the STAR board), at most 640 a request; an ex-dividend day's raw
//!   row carries a dict. An unknown symbol answers its key with an empty `day`.
//! - Sina `getKLineData`: the latest N bars only, objects of strings, volume in shares, no
//!   amount.
//! - Sina `hfq.js`: `var sh600000hfq={...};` (sometimes a comment after it), the cumulative
//!   backward-adjustment factors newest first, a `1900-01-01` row last.

use chrono::{Datelike, NaiveDate};
use serde_json::Value;

use super::adjust::Factors;
use super::RawBar;
use crate::symbol::{Exchange, Symbol};
use crate::transport::HttpRequest;
use crate::upstream::Provider;

/// The largest kline answer accepted: ten thousand bars at well under 200 bytes each.
const MAX_KLINE_BODY: usize = 4 * 1024 * 1024;
/// The largest factor file accepted.
const MAX_FACTOR_BODY: usize = 512 * 1024;
/// Bars a Tencent request may ask for.
pub(crate) const TENCENT_PAGE: u32 = 640;
/// Bars a Sina request may ask for.
pub(crate) const SINA_MAX_BARS: u32 = 1023;

/// What is asked of an upstream's history service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Raw daily bars from `start` to `end`; `count` bounds them (Tencent's page, Sina's
    /// latest-N).
    Bars {
        start: NaiveDate,
        end: NaiveDate,
        count: u32,
    },
    /// The backward-adjustment factor table (Sina).
    Factors,
}

/// One kline answer, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KlineAnswer {
    /// False when the upstream says it does not know the symbol.
    pub known: bool,
    /// Bars in date order, checked.
    pub bars: Vec<RawBar>,
    /// Days the upstream marks as ex-dividend days (Tencent).
    pub ex_dates: Vec<NaiveDate>,
}

/// The public base URL of a provider's history service (a base URL configured for the
/// provider replaces it, as for quotes).
pub(crate) fn default_base_url(provider: Provider, endpoint: Endpoint) -> &'static str {
    match (provider, endpoint) {
        (Provider::Eastmoney, _) => "https://push2his.eastmoney.com",
        (Provider::Tencent, _) => "https://web.ifzq.gtimg.cn",
        (Provider::Sina, Endpoint::Bars { .. }) => "https://money.finance.sina.com.cn",
        (Provider::Sina, Endpoint::Factors) => "https://finance.sina.com.cn",
        (Provider::Relay, _) => provider.default_base_url(),
    }
}

/// The request, or `None` when this provider does not serve it (factors anywhere but Sina
/// and a relay).
pub(crate) fn request(
    provider: Provider,
    base: &str,
    symbol: Symbol,
    endpoint: Endpoint,
) -> Option<HttpRequest> {
    let base = base.trim_end_matches('/');
    let key = symbol.key();
    let (url, max_body) = match (provider, endpoint) {
        (Provider::Eastmoney, Endpoint::Bars { start, end, .. }) => {
            let market = match symbol.exchange() {
                Exchange::Shanghai => 1,
                Exchange::Shenzhen | Exchange::Beijing => 0,
            };
            (
                format!(
                    "{base}/api/qt/stock/kline/get?secid={market}.{code}&klt=101&fqt=0\
                     &beg={start}&end={end}&fields1=f1,f2,f3,f4,f5,f6\
                     &fields2=f51,f52,f53,f54,f55,f56,f57,f58,f59,f60,f61",
                    code = symbol.code(),
                    start = super::date_text(start, true),
                    end = super::date_text(end, true),
                ),
                MAX_KLINE_BODY,
            )
        }
        (Provider::Tencent, Endpoint::Bars { start, end, count }) => (
            format!(
                "{base}/appstock/app/fqkline/get?param={key},day,{start},{end},{count},",
                count = count.min(TENCENT_PAGE)
            ),
            MAX_KLINE_BODY,
        ),
        (Provider::Sina, Endpoint::Bars { count, .. }) => (
            format!(
                "{base}/quotes_service/api/json_v2.php/CN_MarketData.getKLineData\
                 ?symbol={key}&scale=240&ma=no&datalen={count}",
                count = count.clamp(1, SINA_MAX_BARS)
            ),
            MAX_KLINE_BODY,
        ),
        (Provider::Sina, Endpoint::Factors) => (
            format!("{base}/realstock/company/{key}/hfq.js"),
            MAX_FACTOR_BODY,
        ),
        (Provider::Relay, Endpoint::Bars { start, end, .. }) => (
            format!("{base}/api/v1/history/{key}?start={start}&end={end}&adjust=none&raw=1"),
            MAX_KLINE_BODY,
        ),
        (Provider::Relay, Endpoint::Factors) => {
            (format!("{base}/api/v1/factors/{key}"), MAX_FACTOR_BODY)
        }
        (Provider::Eastmoney | Provider::Tencent, Endpoint::Factors) => return None,
    };
    Some(HttpRequest {
        url,
        headers: Vec::new(),
        max_body,
    })
}

/// Reads a daily-kline answer of `provider` for `symbol`: the bars in date order, one a day,
/// each checked (positive prices, high and low bounding open and close), units normalised
/// (volume in shares). A body that is not this upstream's format is an error saying why.
pub fn parse_bars(provider: Provider, symbol: Symbol, body: &[u8]) -> Result<KlineAnswer, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut answer = match provider {
        Provider::Eastmoney => eastmoney(text)?,
        Provider::Tencent => tencent(text, symbol)?,
        Provider::Sina => sina(text)?,
        Provider::Relay => relay(text)?,
    };
    // Date order, one bar a day (a page boundary may repeat a day: the later row wins).
    answer.bars.sort_by_key(|b| b.date);
    answer.bars.dedup_by(|later, earlier| {
        let same = later.date == earlier.date;
        if same {
            *earlier = *later;
        }
        same
    });
    for bar in &answer.bars {
        bar.check()?;
    }
    Ok(answer)
}

/// Reads a factor file (`hfq.js`, or a relay's JSON). `None` when the upstream does not
/// know the symbol.
pub fn parse_factors(provider: Provider, body: &[u8]) -> Result<Option<Factors>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let value = first_json_value(text)?;
    if value.is_null() {
        return Ok(None);
    }
    let rows = match provider {
        Provider::Relay => value.get("factors"),
        _ => value.get("data"),
    }
    .and_then(Value::as_array)
    .ok_or("no factor rows")?;
    let mut table = Vec::with_capacity(rows.len());
    for row in rows {
        let (date, factor) = match row {
            Value::Object(o) => (o.get("d"), o.get("f")),
            Value::Array(a) => (a.first(), a.get(1)),
            _ => (None, None),
        };
        let date = date
            .and_then(Value::as_str)
            .and_then(|d| super::ymd(d).filter(|_| d.len() == 10))
            .ok_or_else(|| format!("bad factor date in {row}"))?;
        let factor = factor
            .and_then(number)
            .filter(|f| (1e-6..=1e9).contains(f))
            .ok_or_else(|| format!("bad factor in {row}"))?;
        table.push((date, factor));
    }
    // Sina's last row, `1900-01-01` with factor 1, says what an empty table says.
    table.retain(|&(date, factor)| !(date.year() == 1900 && factor == 1.0));
    Ok(Some(Factors::new(table)))
}

/// The first JSON value in `text`, from its first `{`, `[` or `null`: what follows it (`;`,
/// a comment) is ignored.
fn first_json_value(text: &str) -> Result<Value, String> {
    let start = match (text.find(['{', '[']), text.find("null")) {
        (Some(v), Some(n)) if n < v => return Ok(Value::Null),
        (None, Some(_)) => return Ok(Value::Null),
        (Some(v), _) => v,
        (None, None) => return Err("no JSON in the answer".into()),
    };
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Value>()
        .next()
        .ok_or("no JSON in the answer")?
        .map_err(|e| format!("bad JSON: {e}"))
}

/// A number written as a JSON number or a string.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn date(text: &str) -> Result<NaiveDate, String> {
    // Minute bars carry a time after the date; daily bars never do.
    (text.get(..10).and_then(super::ymd)).ok_or_else(|| format!("bad date {text:?}"))
}

fn field(fields: &[&str], i: usize, what: &str) -> Result<f64, String> {
    fields
        .get(i)
        .and_then(|f| f.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("bad {what} in {:?}", fields.join(",")))
}

/// Eastmoney: `rc` not 0 or `data: null` is an unknown symbol (or bad parameters).
fn eastmoney(text: &str) -> Result<KlineAnswer, String> {
    let root = first_json_value(text)?;
    let data = root.get("data").ok_or("no data field")?;
    if root.get("rc").and_then(Value::as_i64).unwrap_or(0) != 0 || data.is_null() {
        return Ok(KlineAnswer::default());
    }
    let lines = data
        .get("klines")
        .and_then(Value::as_array)
        .ok_or("no klines")?;
    let mut bars = Vec::with_capacity(lines.len());
    for line in lines {
        let line = line.as_str().ok_or("a kline is not a string")?;
        let f: Vec<&str> = line.split(',').collect();
        let close = field(&f, 2, "close")?;
        let optional = |i| f.get(i).and_then(|v: &&str| v.trim().parse::<f64>().ok());
        bars.push(RawBar {
            date: date(f[0])?,
            open: field(&f, 1, "open")?,
            close,
            high: field(&f, 3, "high")?,
            low: field(&f, 4, "low")?,
            volume: field(&f, 5, "volume")? * 100.0,
            amount: optional(6),
            turnover_rate: optional(10),
            prev_close: optional(9).map(|change| round_to(close - change, 4)),
        });
    }
    Ok(KlineAnswer {
        known: true,
        bars,
        ex_dates: Vec::new(),
    })
}

/// Tencent: `data.<key>.day` rows (`qfqday`/`hfqday` when adjusted: never asked). Volume in
/// lots, but in shares on the STAR board (as in its realtime quotes).
fn tencent(text: &str, symbol: Symbol) -> Result<KlineAnswer, String> {
    let key = symbol.key();
    let key = key.as_str();
    let lot = if symbol.is_star() { 1.0 } else { 100.0 };
    let root = first_json_value(text)?;
    let Some(entry) = root.get("data").and_then(|d| d.get(key)) else {
        // `{"code":0,"msg":"","data":{}}` or an error code: the symbol is not known.
        return match root.get("code") {
            Some(_) => Ok(KlineAnswer::default()),
            None => Err("no code field".into()),
        };
    };
    let rows = match entry.get("day") {
        Some(Value::Array(rows)) => rows.as_slice(),
        _ => &[],
    };
    // An unknown code answers its key too, with an empty `day` and an empty `qt` quote.
    let has_quote = (entry.get("qt").and_then(|q| q.get(key)))
        .and_then(Value::as_array)
        .is_some_and(|q| !q.is_empty());
    let mut answer = KlineAnswer {
        known: !rows.is_empty() || has_quote,
        ..Default::default()
    };
    for row in rows {
        let cells = row.as_array().ok_or("a row is not an array")?;
        let text_of = |i: usize| cells.get(i).and_then(Value::as_str).unwrap_or("");
        let f: Vec<&str> = (0..6).map(text_of).collect();
        let bar = RawBar {
            date: date(f[0])?,
            open: field(&f, 1, "open")?,
            close: field(&f, 2, "close")?,
            high: field(&f, 3, "high")?,
            low: field(&f, 4, "low")?,
            volume: field(&f, 5, "volume")? * lot,
            amount: None,
            turnover_rate: None,
            prev_close: None,
        };
        // `{"nd":"2022","fh_sh":"259.11","djr":...,"cqr":"2023-06-30","FHcontent":...}`
        if cells
            .get(6)
            .and_then(Value::as_object)
            .is_some_and(|dict| !dict.is_empty())
        {
            answer.ex_dates.push(bar.date);
        }
        answer.bars.push(bar);
    }
    Ok(answer)
}

/// Sina: `null` for an unknown symbol; objects whose values are strings.
fn sina(text: &str) -> Result<KlineAnswer, String> {
    let root = first_json_value(text)?;
    let rows = match &root {
        Value::Null => return Ok(KlineAnswer::default()),
        Value::Array(rows) => rows,
        _ => return Err("not an array".into()),
    };
    let mut bars = Vec::with_capacity(rows.len());
    for row in rows {
        let get = |name: &str| {
            row.get(name)
                .and_then(number)
                .ok_or_else(|| format!("bad {name} in {row}"))
        };
        let day = row.get("day").and_then(Value::as_str).unwrap_or("");
        bars.push(RawBar {
            date: date(day)?,
            open: get("open")?,
            high: get("high")?,
            low: get("low")?,
            close: get("close")?,
            volume: get("volume")?,
            amount: None,
            turnover_rate: None,
            prev_close: None,
        });
    }
    Ok(KlineAnswer {
        known: !bars.is_empty(),
        bars,
        ex_dates: Vec::new(),
    })
}

/// A relay: `{"symbol", "bars": [RawBar...]}` or `{"error", "code"}`.
fn relay(text: &str) -> Result<KlineAnswer, String> {
    let root = first_json_value(text)?;
    if root.get("code").and_then(Value::as_str) == Some("not_found") {
        return Ok(KlineAnswer::default());
    }
    let bars = root.get("bars").ok_or("no bars")?;
    let bars: Vec<RawBar> =
        serde_json::from_value(bars.clone()).map_err(|e| format!("bad bars: {e}"))?;
    Ok(KlineAnswer {
        known: true,
        bars,
        ex_dates: Vec::new(),
    })
}

pub(crate) fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(key: &str) -> Symbol {
        Symbol::from_key(key).unwrap()
    }

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    /// The real 601872 lines of `../shared/HISTORY.md` (preKPrice 6.08).
    #[test]
    #[allow(clippy::approx_constant)] // 6.28 is a price, not τ
    fn eastmoney_real_lines() {
        let body = r#"{"rc":0,"rt":17,"data":{"code":"601872","market":1,"name":"招商轮船","decimal":2,"dktotal":4621,"preKPrice":6.08,"klines":["2024-12-18,6.11,6.18,6.28,6.10,842743,542829495.00,2.96,1.64,0.10,1.03","2024-12-19,6.15,6.09,6.16,6.03,528781,333859220.00,2.10,-1.46,-0.09,0.65","2024-12-20,6.08,5.97,6.10,5.97,701931,437784952.00,2.13,-1.97,-0.12,0.86"]}}"#;
        let a = parse_bars(Provider::Eastmoney, sym("sh601872"), body.as_bytes()).unwrap();
        assert!(a.known);
        assert_eq!(a.bars.len(), 3);
        let b = a.bars[0];
        assert_eq!(
            (b.date, b.open, b.close, b.high, b.low),
            (d("2024-12-18"), 6.11, 6.18, 6.28, 6.10)
        );
        assert_eq!(b.volume, 84_274_300.0, "lots to shares");
        assert_eq!(b.amount, Some(542_829_495.0));
        assert_eq!(b.turnover_rate, Some(1.03));
        assert_eq!(b.prev_close, Some(6.08), "close minus change is preKPrice");
        assert_eq!(a.bars[1].prev_close, Some(6.18));
        // JSONP is the same answer.
        let jsonp = format!("jQuery1_2({body});");
        assert_eq!(
            parse_bars(Provider::Eastmoney, sym("sh601872"), jsonp.as_bytes()).unwrap(),
            a
        );
    }

    #[test]
    fn eastmoney_unknown_and_empty() {
        for body in [r#"{"rc":102,"data":null}"#, r#"{"rc":0,"data":null}"#] {
            let a = parse_bars(Provider::Eastmoney, sym("sh600000"), body.as_bytes()).unwrap();
            assert!(!a.known && a.bars.is_empty(), "{body}");
        }
        let empty = r#"{"rc":0,"data":{"code":"600000","market":1,"dktotal":0,"klines":[]}}"#;
        let a = parse_bars(Provider::Eastmoney, sym("sh600000"), empty.as_bytes()).unwrap();
        assert!(a.known && a.bars.is_empty());
        for bad in [
            "",
            "<html>",
            r#"{"rc":0}"#,
            r#"{"rc":0,"data":{"klines":["x"]}}"#,
        ] {
            assert!(
                parse_bars(Provider::Eastmoney, sym("sh600000"), bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        // An index line with 8 fields: no turnover, no change.
        let index = r#"{"rc":0,"data":{"klines":["2026-09-28,4423.82,4340.76,4423.82,4323.57,171277373,428620471197.90,2.26"]}}"#;
        let a = parse_bars(Provider::Eastmoney, sym("sh000300"), index.as_bytes()).unwrap();
        assert_eq!(a.bars[0].close, 4340.76);
        assert_eq!(
            (a.bars[0].prev_close, a.bars[0].turnover_rate),
            (None, None)
        );
    }

    /// The real 600519 row of `../shared/HISTORY.md`, and an ex-dividend row with its dict.
    #[test]
    fn tencent_rows_and_ex_dividend_dicts() {
        let body = r#"{"code":0,"msg":"","data":{"sh600519":{"day":[["2023-06-29","1700.00","1710.00","1720.00","1690.00","20000.00"],["2023-06-30","1690.00","1695.00","1700.00","1680.00","21000.00",{"nd":"2022","fh_sh":"259.11","djr":"2023-06-29","cqr":"2023-06-30","FHcontent":"10派259.11元"}],["2026-07-16","1252.00","1258.99","1267.97","1245.05","47611.00",{},"0.38","598757.09",""]]}}}"#;
        let a = parse_bars(Provider::Tencent, sym("sh600519"), body.as_bytes()).unwrap();
        assert_eq!(a.bars.len(), 3);
        assert_eq!(a.ex_dates, vec![d("2023-06-30")]);
        let b = a.bars[2];
        assert_eq!(
            (b.open, b.close, b.high, b.low, b.volume),
            (1252.00, 1258.99, 1267.97, 1245.05, 4_761_100.0)
        );
        let var = format!("kline_day={body}");
        assert_eq!(
            parse_bars(Provider::Tencent, sym("sh600519"), var.as_bytes()).unwrap(),
            a
        );
        // The STAR board's volume is in shares.
        let star = r#"{"code":0,"msg":"","data":{"sh688981":{"day":[["2024-06-03","50.000","50.500","51.000","49.800","39368171.000"]]}}}"#;
        let a = parse_bars(Provider::Tencent, sym("sh688981"), star.as_bytes()).unwrap();
        assert_eq!(a.bars[0].volume, 39_368_171.0);
        // A real answer for an unknown code, and the empty `data` shape.
        let real = r#"{"code":0,"msg":"","data":{"sh999999":{"day":[],"qt":{"sh999999":[],"market":["2026-01-14 15:00:00|..."]},"mx_price":{"mx":[],"price":[]},"prec":"","version":"16"}}}"#;
        assert!(
            !parse_bars(Provider::Tencent, sym("sh999999"), real.as_bytes())
                .unwrap()
                .known
        );
        let unknown = r#"{"code":0,"msg":"","data":{}}"#;
        assert!(
            !parse_bars(Provider::Tencent, sym("sh600519"), unknown.as_bytes())
                .unwrap()
                .known
        );
    }

    /// Sina's string-valued objects (`../shared/HISTORY.md`), volume in shares.
    #[test]
    fn sina_string_objects() {
        let body = r#"[{"day":"2026-09-21","open":"19.810","high":"20.100","low":"19.630","close":"20.090","volume":"3202796"}]"#;
        let a = parse_bars(Provider::Sina, sym("sh600519"), body.as_bytes()).unwrap();
        let b = a.bars[0];
        assert_eq!(
            (b.date, b.open, b.high, b.low, b.close, b.volume, b.amount),
            (
                d("2026-09-21"),
                19.81,
                20.1,
                19.63,
                20.09,
                3_202_796.0,
                None
            )
        );
        for unknown in ["null", "[]"] {
            let a = parse_bars(Provider::Sina, sym("sh600519"), unknown.as_bytes()).unwrap();
            assert!(!a.known && a.bars.is_empty());
        }
        let bad = r#"[{"day":"2026-09-21","open":"19.810","high":"19.000","low":"19.630","close":"20.090","volume":"1"}]"#;
        assert!(parse_bars(Provider::Sina, sym("sh600519"), bad.as_bytes()).is_err());
    }

    /// `hfq.js` with the sentinel and a trailing comment (`../shared/HISTORY.md`).
    #[test]
    fn sina_factor_files() {
        let body = r#"var sh600000hfq={"total":3,"data":[{"d":"2026-07-24","f":"1.2000000000000000"},{"d":"2026-07-22","f":"1.1000000000000000"},{"d":"1900-01-01","f":"1.0000000000000000"}]};
/* 千股千评 {"d":"2030-01-01","f":"9"} */"#;
        let f = parse_factors(Provider::Sina, body.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(f.at(d("2026-07-21")), 1.0);
        assert_eq!(f.at(d("2026-07-22")), 1.1);
        assert_eq!(f.at(d("2026-07-23")), 1.1);
        assert_eq!(f.at(d("2026-12-31")), 1.2);
        assert_eq!(f.latest(), 1.2);
        assert_eq!(f.rows().len(), 2, "the 1900 sentinel is not a row");
        assert!(parse_factors(Provider::Sina, b"var x=null;")
            .unwrap()
            .is_none());
        for bad in [
            "",
            "var x={\"data\":[{\"d\":\"x\",\"f\":\"1\"}]};",
            "var x={\"data\":[{\"d\":\"2020-01-01\",\"f\":\"-1\"}]};",
        ] {
            assert!(
                parse_factors(Provider::Sina, bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    /// Real captures in `tests/data/history/` (their sources are in `SOURCES.md` there).
    #[test]
    fn real_captures() {
        // Eastmoney, a whole envelope: each bar's previous close is the close before it.
        let body = include_str!("../../tests/data/history/eastmoney_kline_601872_fqt1.json");
        let a = parse_bars(Provider::Eastmoney, sym("sh601872"), body.as_bytes()).unwrap();
        assert_eq!(a.bars.len(), 10);
        assert_eq!(a.bars[0].prev_close, Some(6.08));
        for pair in a.bars.windows(2) {
            assert_eq!(pair[1].prev_close, Some(pair[0].close), "{}", pair[1].date);
        }
        // Tencent, an index from its first day: lots, and a known symbol.
        let body = include_str!("../../tests/data/history/tencent_fqkline_sh000001_day_1990.json");
        let a = parse_bars(Provider::Tencent, sym("sh000001"), body.as_bytes()).unwrap();
        assert!(a.known);
        assert_eq!((a.bars[0].date, a.bars[0].close), (d("1990-12-19"), 113.1));
        assert_eq!(a.bars[0].volume, 265_000.0);
        // Sina daily rows of sh600103 around its 2019-06-03 ex-date (10 bonus shares for
        // every 30 held), with the two hfq.js rows the capture quotes: the change on the
        // ex-date is against 3.04 / 1.3.
        let rows: Vec<&str> =
            include_str!("../../tests/data/history/sina_kline_qfq_hfq_sh600103_2019.txt")
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with('{'))
                .collect();
        let bars = format!("[{}]", rows[..2].join(","));
        let a = parse_bars(Provider::Sina, sym("sh600103"), bars.as_bytes()).unwrap();
        let factors = format!(
            "var sh600103hfq={{\"total\":2,\"data\":[{}]}};",
            rows[4..6].join(",")
        );
        let f = parse_factors(Provider::Sina, factors.as_bytes())
            .unwrap()
            .unwrap();
        let derived = crate::history::derive(&a.bars, None, Some(&f), crate::history::Adjust::None);
        let pct = derived[1].change_percent.unwrap();
        assert!(
            (pct - (2.45 / (3.04 / 1.3) - 1.0) * 100.0).abs() < 0.01,
            "{pct}"
        );
        let qfq = crate::history::derive(&a.bars, None, Some(&f), crate::history::Adjust::Qfq);
        assert!(
            (qfq[0].close - 3.04 / 1.3).abs() < 0.001,
            "{}",
            qfq[0].close
        );
        assert_eq!(qfq[1].close, 2.45);
    }

    #[test]
    fn requests() {
        let bars = Endpoint::Bars {
            start: d("2024-01-01"),
            end: d("2024-12-31"),
            count: 5000,
        };
        let url = |p, s, e| request(p, "http://m/", sym(s), e).unwrap().url;
        assert!(url(Provider::Eastmoney, "bj430017", bars)
            .contains("secid=0.430017&klt=101&fqt=0&beg=20240101&end=20241231"));
        assert!(url(Provider::Tencent, "sz000001", bars)
            .ends_with("param=sz000001,day,2024-01-01,2024-12-31,640,"));
        assert!(url(Provider::Sina, "sh600000", bars)
            .ends_with("symbol=sh600000&scale=240&ma=no&datalen=1023"));
        assert_eq!(
            url(Provider::Sina, "sh600000", Endpoint::Factors),
            "http://m/realstock/company/sh600000/hfq.js"
        );
        assert!(request(
            Provider::Eastmoney,
            "http://m",
            sym("sh600000"),
            Endpoint::Factors
        )
        .is_none());
    }
}
