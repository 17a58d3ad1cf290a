//! Sina `hq.sinajs.cn`: `var hq_str_sh600000="name,open,prev_close,price,high,low,...";` in GBK.

use super::{date_time, digits_at, joined_keys, num_bytes, records, split_bytes, Parsed};
use crate::platform::decode_gbk;
use crate::quote::RawQuote;
use crate::symbol::Symbol;
use crate::transport::HttpRequest;

/// Sina refuses requests without this Referer (403 or an empty body).
pub const REFERER: &str = "https://finance.sina.com.cn/";

pub fn request(base: &str, symbols: &[Symbol]) -> HttpRequest {
    HttpRequest {
        url: format!("{base}/list={}", joined_keys(symbols)),
        headers: vec![("Referer", REFERER.to_string())],
        max_body: super::answer_bound(symbols.len()),
    }
}

pub fn parse(body: &[u8]) -> Result<Vec<Parsed>, String> {
    records(body, b"var hq_str_", record)
}

/// Fields read: 0 name, 1 open, 2 previous close, 3 price, 4 high, 5 low, 8 volume (shares;
/// lots for a Shanghai index, `sh000xxx`, while Shenzhen indices are in shares), 9 amount
/// (yuan), 30 date, 31 time, and 32 the status when there: `00` trading, `03` suspended,
/// `-2` terminated and `-3` delisted (every price 0, the previous close included). Extra
/// trailing fields are ignored.
const FIELDS: usize = 32;

/// One record; `None` for an unknown code (empty value), an error for a short record.
fn record(symbol: Symbol, value: &[u8]) -> Result<Option<RawQuote>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let mut f: [&[u8]; FIELDS] = [&[]; FIELDS];
    let mut count = 0;
    let mut fields = split_bytes(value, b',');
    for (slot, field) in f.iter_mut().zip(&mut fields) {
        *slot = field;
        count += 1;
    }
    if count < FIELDS {
        return Err(format!("{count} fields, {FIELDS} needed"));
    }
    // A terminated or delisted listing is no quote: not a quote with zero prices.
    if matches!(fields.next().map(<[u8]>::trim_ascii), Some(b"-2" | b"-3")) {
        return Ok(None);
    }
    let (d, t) = (f[30].trim_ascii(), f[31].trim_ascii());
    let time = date_time([
        digits_at(d, 0..4),
        digits_at(d, 5..7),
        digits_at(d, 8..10),
        digits_at(t, 0..2),
        digits_at(t, 3..5),
        digits_at(t, 6..8),
    ]);
    let volume_unit = if symbol.is_shanghai_index() {
        100.0
    } else {
        1.0
    };
    Ok(Some(RawQuote {
        symbol: Some(symbol),
        // Only the name is text: decode just that field.
        name: decode_gbk(f[0]),
        open: num_bytes(f[1]),
        prev_close: num_bytes(f[2]),
        price: num_bytes(f[3]),
        high: num_bytes(f[4]),
        low: num_bytes(f[5]),
        volume: num_bytes(f[8]).map(|v| v * volume_unit),
        amount: num_bytes(f[9]),
        time,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The well-formed records only.
    fn parse(body: &[u8]) -> Result<Vec<RawQuote>, String> {
        super::super::well_formed(super::parse(body))
    }

    const SAMPLE: &str = "var hq_str_sh600000=\"浦发银行,9.090,9.110,9.050,9.150,9.030,9.040,9.050,51270289,465159863.000,375500,9.040,709400,9.030,452100,9.020,714700,9.010,862200,9.000,436555,9.050,284000,9.060,220600,9.070,110065,9.080,351295,9.090,2026-08-21,15:34:58,00,D|36500|330325.00\";\n";

    fn gbk(s: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(s).0.into_owned()
    }

    #[test]
    fn terminated_and_delisted_listings_are_no_quote() {
        for status in ["-2", "-3"] {
            let line = SAMPLE.replace(",00,D|", &format!(",{status},D|"));
            assert_eq!(parse(&gbk(&line)).unwrap(), vec![], "{status}");
        }
        let suspended = SAMPLE.replace(",00,D|", ",03,D|");
        assert_eq!(parse(&gbk(&suspended)).unwrap().len(), 1);
    }

    #[test]
    fn shanghai_index_volume_is_in_lots_shenzhen_in_shares() {
        let line = |key: &str| {
            format!(
                "var hq_str_{key}=\"指数,3201.1234,3190.0000,3210.5678,3215.0000,3188.0000,0,0,\
                 3950805,512345678901,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2026-08-21,15:00:01,00\";\n"
            )
        };
        let body = gbk(&(line("sh000001") + &line("sz399001")));
        let quotes = parse(&body).unwrap();
        assert_eq!(quotes[0].volume, Some(395_080_500.0));
        assert_eq!(quotes[1].volume, Some(3_950_805.0));
    }

    #[test]
    fn parses_the_published_sample_in_gbk() {
        let quotes = parse(&gbk(SAMPLE)).unwrap();
        assert_eq!(quotes.len(), 1);
        let q = &quotes[0];
        assert_eq!(q.symbol.unwrap().key(), "sh600000");
        assert_eq!(q.name, "浦发银行");
        assert_eq!(q.open, Some(9.09));
        assert_eq!(q.prev_close, Some(9.11));
        assert_eq!(q.price, Some(9.05));
        assert_eq!(q.high, Some(9.15));
        assert_eq!(q.low, Some(9.03));
        assert_eq!(q.volume, Some(51270289.0));
        assert_eq!(q.amount, Some(465159863.0));
        assert_eq!(q.time.unwrap().to_string(), "2026-08-21 15:34:58");
    }

    #[test]
    fn unknown_codes_and_short_records_are_absent() {
        let body = gbk("var hq_str_sh603999=\"\";\nvar hq_str_sz000001=\"平安银行,1,2\";\n");
        assert_eq!(parse(&body).unwrap(), vec![]);
    }

    #[test]
    fn multiple_lines_and_unknown_prefixes() {
        let body = format!(
            "{SAMPLE}var hq_str_hk00700=\"x\";\n{}",
            SAMPLE.replace("sh600000", "sz000001")
        );
        let keys: Vec<_> = parse(&gbk(&body))
            .unwrap()
            .iter()
            .map(|q| q.symbol.unwrap().key())
            .collect();
        assert_eq!(keys, ["sh600000", "sz000001"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"<html>forbidden</html>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff, 0xfe, 0x80, 0x00]).is_err());
        // Truncated mid-record: the whole answer is refused.
        assert!(parse(&gbk(SAMPLE)[..40]).is_err());
    }

    #[test]
    fn malformed_gbk_becomes_replacement_characters() {
        let bad = b"var hq_str_sh600000=\"\x81\x20AB,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,2026-08-21,15:34:58,00\";";
        assert_eq!(parse(bad).unwrap()[0].name, "\u{fffd} AB");
    }

    #[test]
    fn request_carries_the_referer() {
        let r = request(
            "http://hq.sinajs.cn",
            &[
                Symbol::parse("600000").unwrap(),
                Symbol::parse("000001").unwrap(),
            ],
        );
        assert_eq!(r.url, "http://hq.sinajs.cn/list=sh600000,sz000001");
        assert_eq!(r.headers, vec![("Referer", REFERER.to_string())]);
    }
}
