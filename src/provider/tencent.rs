//! Tencent `qt.gtimg.cn`: `v_sh600000="1~name~600000~price~prev_close~open~volume(lots)~...";`
//! in GBK. Volumes are in lots of 100 shares, except on the STAR board (688xxx, 689xxx)
//! where fields 6 and 36 are in shares; field 37 is in 10,000 yuan.

use super::{date_time, digits_at, joined_keys, num, records, Parsed};
use crate::platform::decode_gbk;
use crate::quote::RawQuote;
use crate::symbol::Symbol;
use crate::transport::HttpRequest;

pub fn request(base: &str, symbols: &[Symbol]) -> HttpRequest {
    HttpRequest {
        url: format!("{base}/q={}", joined_keys(symbols)),
        headers: Vec::new(),
        max_body: super::answer_bound(symbols.len()),
    }
}

/// `v_pv_none_match="1"`, the answer for unknown codes, counts as a record: it reads as none.
pub fn parse(body: &[u8]) -> Result<Vec<Parsed>, String> {
    records(body, b"v_", record)
}

fn record(symbol: Symbol, value: &[u8]) -> Result<Option<RawQuote>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    // `~` can be a GBK trail byte, so decode the record before splitting it.
    let text = decode_gbk(value);
    let f: Vec<&str> = text.split('~').collect();
    if f.len() < 35 {
        return Err(format!("{} fields, 35 needed", f.len()));
    }
    // Field 40 is a status flag: `S` suspended (handled as any day without trades), `D`
    // delisted, `U` and `C` codes that moved: those are no quote, not one with stale prices.
    if matches!(f.get(40).map(|s| s.trim()), Some("D" | "U" | "C")) {
        return Ok(None);
    }
    let volume_unit = if symbol.is_star() { 1.0 } else { 100.0 };
    let volume = |i: usize| f.get(i).and_then(|v| num(v)).map(|v| v * volume_unit);
    // Field 35 is `price/volume/amount` with the amount in yuan; field 37 is in 10,000 yuan.
    let amount = f
        .get(35)
        .and_then(|v| v.split('/').nth(2))
        .and_then(num)
        .or_else(|| f.get(37).and_then(|v| num(v)).map(|v| v * 10_000.0));
    Ok(Some(RawQuote {
        symbol: Some(symbol),
        name: f[1].to_string(),
        price: num(f[3]),
        prev_close: num(f[4]),
        open: num(f[5]),
        volume: volume(6).or_else(|| volume(36)),
        high: num(f[33]),
        low: num(f[34]),
        amount,
        time: {
            let t = f[30].trim().as_bytes();
            date_time([0..4, 4..6, 6..8, 8..10, 10..12, 12..14].map(|r| digits_at(t, r)))
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The well-formed records only.
    fn parse(body: &[u8]) -> Result<Vec<RawQuote>, String> {
        super::super::well_formed(super::parse(body))
    }

    const SAMPLE: &str = "v_sh600000=\"1~浦发银行~600000~9.00~8.89~8.85~544687~323481~221557~9.00~1384~8.99~2223~8.98~911~8.97~602~8.96~374~9.01~655~9.02~17648~9.03~10161~9.04~6039~9.05~10338~~20260708161454~0.11~1.24~9.03~8.79~~\";";

    fn gbk(s: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(s).0.into_owned()
    }

    #[test]
    fn delisted_and_moved_codes_are_no_quote() {
        let mut fields: Vec<String> = SAMPLE
            .trim_end_matches("\";")
            .split('~')
            .map(String::from)
            .collect();
        fields.resize(45, String::new());
        for (flag, quotes) in [("D", 0), ("U", 0), ("C", 0), ("S", 1), ("", 1)] {
            fields[40] = flag.into();
            let body = fields.join("~") + "\";";
            assert_eq!(parse(&gbk(&body)).unwrap().len(), quotes, "{flag:?}");
        }
    }

    #[test]
    fn star_board_volume_is_in_shares() {
        let star = SAMPLE
            .replace("sh600000", "sh688001")
            .replace("~600000~", "~688001~");
        let q = &parse(&gbk(&star)).unwrap()[0];
        assert_eq!(q.volume, Some(544_687.0));
    }

    #[test]
    fn parses_the_published_short_sample() {
        let q = &parse(&gbk(SAMPLE)).unwrap()[0];
        assert_eq!(q.symbol.unwrap().key(), "sh600000");
        assert_eq!(q.name, "浦发银行");
        assert_eq!(q.price, Some(9.00));
        assert_eq!(q.prev_close, Some(8.89));
        assert_eq!(q.open, Some(8.85));
        assert_eq!(q.volume, Some(54_468_700.0)); // 544,687 lots
        assert_eq!(q.high, Some(9.03));
        assert_eq!(q.low, Some(8.79));
        assert_eq!(q.amount, None); // the sample is cut before the amount fields
        assert_eq!(q.time.unwrap().to_string(), "2026-07-08 16:14:54");
    }

    #[test]
    fn long_records_convert_lots_and_ten_thousands() {
        let mut fields: Vec<String> = SAMPLE
            .trim_end_matches("\";")
            .split('~')
            .map(String::from)
            .collect();
        fields.truncate(35);
        fields.push("9.00/544687/".into()); // 35 with no amount: fall back to field 37
        fields.push("544687".into()); // 36
        fields.push("48894.7253".into()); // 37, 10,000 yuan
        fields.extend((38..88).map(|i| i.to_string()));
        let q = &parse(&gbk(&(fields.join("~") + "\";"))).unwrap()[0];
        assert_eq!(q.amount, Some(488_947_253.0));
        fields[35] = "9.00/544687/488947253".into();
        let q = &parse(&gbk(&(fields.join("~") + "\";"))).unwrap()[0];
        assert_eq!(q.amount, Some(488_947_253.0));
    }

    #[test]
    fn unknown_codes_answer_none_match() {
        assert_eq!(parse(b"v_pv_none_match=\"1\";\n").unwrap(), vec![]);
        let body = gbk(&format!("{SAMPLE}\nv_pv_none_match=\"1\";\n"));
        assert_eq!(parse(&body).unwrap().len(), 1);
    }

    #[test]
    fn garbage_and_dashes() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<html>").is_err());
        let dashed = SAMPLE.replace("~9.00~8.89~", "~-~8.89~");
        assert_eq!(parse(&gbk(&dashed)).unwrap()[0].price, None);
    }
}
