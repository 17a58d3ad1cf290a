//! The mock's daily history: the three kline formats against each other and against
//! `history::bars`, the factors, the realtime previous close, today's bar, and the HTTP side
//! (clock, counters, JSONP, unknown symbols, caps, outages).

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Weekday};
use mock_upstream::history::{self, MockBar};
use mock_upstream::{market_quote_on, HistoryCounts, MockConfig, MockUpstream};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn cents(yuan: f64) -> i64 {
    (yuan * 100.0).round() as i64
}

fn body(path_and_query: &str, now: DateTime<FixedOffset>, tick: u64) -> (u16, String) {
    let (status, bytes) = history::history_body(path_and_query, now, tick).unwrap();
    (status, String::from_utf8(bytes).unwrap())
}

fn json(path_and_query: &str, now: DateTime<FixedOffset>) -> Value {
    let (status, text) = body(path_and_query, now, 0);
    assert_eq!(status, 200, "{path_and_query}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path_and_query}: {e}: {text}"))
}

fn secid(key: &str) -> String {
    format!(
        "{}.{}",
        if key.starts_with("sh") { 1 } else { 0 },
        &key[2..]
    )
}

/// Eastmoney klines split into fields.
fn em_klines(v: &Value) -> Vec<Vec<String>> {
    v["data"]["klines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().split(',').map(String::from).collect())
        .collect()
}

fn keys() -> Vec<String> {
    MockUpstream::listed_keys()
}

/// A stock with an ex-event in `year` (with bonus shares if `bonus`), and the event.
fn stock_with_event(year: i32, bonus: bool) -> (String, history::ExEvent) {
    let today = date("2026-11-30");
    let now = at("2026-11-30T10:00:00+08:00");
    keys()
        .into_iter()
        .skip(3)
        .filter(|k| !market_quote_on(k, 0, now).unwrap().suspended)
        .find_map(|k| {
            let e = history::ex_events(&k, today)?
                .into_iter()
                .find(|e| e.ex_date.year() == year && (e.bonus_per_10 > 0) == bonus)?;
            Some((k, e))
        })
        .unwrap()
}

const INDICES: [&str; 3] = ["sh000001", "sz399001", "sh000300"];

const SAMPLE: [&str; 8] = [
    "sh600000", "sz000001", "sz300750", "sh688001", "bj430017", "sh601318", "sh000001", "sz399001",
];

#[test]
fn kline_endpoints_agree_with_bars() {
    let now = at("2026-11-30T16:00:00+08:00");
    let (event_key, _) = stock_with_event(2026, false);
    for key in SAMPLE.iter().copied().chain([event_key.as_str()]) {
        let all = history::bars(key, now, 0).unwrap();
        let since_2024: Vec<&MockBar> = all
            .iter()
            .filter(|b| b.date >= date("2024-01-01"))
            .collect();

        // Eastmoney: every bar since 2024, volume in lots.
        let v = json(
            &format!(
                "/api/qt/stock/kline/get?secid={}&klt=101&fqt=0&beg=20240101&end=20500101\
                 &fields1=f1,f2,f3,f4,f5,f6&fields2=f51,f52,f53,f54,f55,f56,f57,f58,f59,f60,f61&ut=x",
                secid(key)
            ),
            now,
        );
        assert_eq!(v["rc"], 0);
        assert_eq!(v["data"]["code"], &key[2..]);
        assert_eq!(v["data"]["dktotal"], all.len());
        assert_eq!(
            v["data"]["preKPrice"].as_f64().unwrap(),
            since_2024[0].prev_close
        );
        let lines = em_klines(&v);
        assert_eq!(lines.len(), since_2024.len(), "{key}");
        for (l, b) in lines.iter().zip(&since_2024) {
            assert_eq!(l[0], b.date.to_string());
            assert_eq!(l[1].parse::<f64>().unwrap(), b.open, "{key} {l:?}");
            assert_eq!(l[2].parse::<f64>().unwrap(), b.close);
            assert_eq!(l[3].parse::<f64>().unwrap(), b.high);
            assert_eq!(l[4].parse::<f64>().unwrap(), b.low);
            assert_eq!(l[5].parse::<u64>().unwrap() * 100, b.volume);
            assert_eq!(l[6], format!("{}.00", b.amount));
            let change = cents(b.close) - cents(b.prev_close);
            assert_eq!(cents(l[9].parse().unwrap()), change, "{key} {l:?}");
            let pct = change as f64 * 100.0 / cents(b.prev_close) as f64;
            assert!((l[8].parse::<f64>().unwrap() - pct).abs() <= 0.005 + 1e-9);
            let amp = (cents(b.high) - cents(b.low)) as f64 * 100.0 / cents(b.prev_close) as f64;
            assert!((l[7].parse::<f64>().unwrap() - amp).abs() <= 0.005 + 1e-9);
            assert!(l[10].parse::<f64>().unwrap() >= 0.0);
        }

        // Tencent: the last 640 of them (never more), volume in lots (shares on the STAR board),
        // three decimals; the realtime quote and the first row's previous close follow.
        let unit = if key.starts_with("sh688") { 1.0 } else { 100.0 };
        let v = json(
            &format!("/appstock/app/fqkline/get?param={key},day,2024-01-01,2026-12-31,640,"),
            now,
        );
        assert_eq!(v["code"], 0);
        let rows = v["data"][key]["day"].as_array().unwrap();
        let expected = &since_2024[since_2024.len().saturating_sub(640)..];
        assert_eq!(rows.len(), expected.len());
        let entry = &v["data"][key];
        let quote = market_quote_on(key, 0, now).unwrap();
        assert_eq!(entry["qt"][key][3], format!("{:.2}", quote.price));
        let prec: f64 = entry["prec"].as_str().unwrap().parse().unwrap();
        assert_eq!(prec, expected[0].prev_close);
        assert_eq!(entry["version"], "16");
        for (r, b) in rows.iter().zip(expected) {
            let f = |i: usize| r[i].as_str().unwrap().parse::<f64>().unwrap();
            assert_eq!(r[0], b.date.to_string());
            for i in 1..6 {
                let text = r[i].as_str().unwrap();
                assert_eq!(text.split('.').nth(1).unwrap().len(), 3, "{text}");
            }
            assert_eq!(
                [f(1), f(2), f(3), f(4), f(5) * unit],
                [b.open, b.close, b.high, b.low, b.volume as f64]
            );
        }

        // Sina: the latest 1023, volume in shares, three decimals.
        let v = json(
            &format!(
                "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol={key}&scale=240&ma=no&datalen=1023"
            ),
            now,
        );
        let rows = v.as_array().unwrap();
        let expected = &all[all.len().saturating_sub(1023)..];
        assert_eq!(rows.len(), expected.len());
        for (r, b) in rows.iter().zip(expected) {
            let f = |k: &str| r[k].as_str().unwrap().parse::<f64>().unwrap();
            assert_eq!(r["day"], b.date.to_string());
            assert_eq!(
                r["open"].as_str().unwrap().split('.').nth(1).unwrap().len(),
                3
            );
            assert_eq!(
                [f("open"), f("close"), f("high"), f("low"), f("volume")],
                [b.open, b.close, b.high, b.low, b.volume as f64]
            );
        }
    }
}

#[test]
fn bars_are_consistent() {
    let now = at("2026-11-30T16:00:00+08:00");
    for key in keys().iter().step_by(41) {
        let bars = history::bars(key, now, 9).unwrap();
        let listing = history::listing_date(key).unwrap();
        assert_eq!(bars.first().map(|b| b.date), Some(listing), "{key}");
        for (i, b) in bars.iter().enumerate() {
            assert!(history::is_trading_day(b.date));
            assert!(
                b.low > 0.0 && b.low <= b.open && b.open <= b.high,
                "{key} {b:?}"
            );
            assert!(b.low <= b.close && b.close <= b.high, "{key} {b:?}");
            assert_eq!(b.volume % 100, 0);
            assert!(b.volume > 0);
            let avg = b.amount / b.volume as f64;
            if !INDICES.contains(&key.as_str()) {
                assert!(avg >= b.low - 0.01 && avg <= b.high + 0.01, "{key} {b:?}");
            }
            if i > 0 {
                assert!(bars[i - 1].date < b.date);
            }
        }
        // Bars are immutable: an earlier today sees the same bars, fewer of them.
        let earlier = history::bars(key, at("2025-03-03T16:00:00+08:00"), 9).unwrap();
        // (A suspended stock's current window moves with today.)
        if !market_quote_on(key, 0, now).unwrap().suspended {
            let n = earlier.len().saturating_sub(1);
            assert_eq!(&earlier[..n], &bars[..n], "{key}");
        }
    }
}

#[test]
fn hfq_is_continuous_across_every_ex_date() {
    let today = date("2026-11-30");
    let now = at("2026-11-30T16:00:00+08:00");
    let (mut checked, mut adjusted_checked) = (0, 0);
    for key in keys().iter().step_by(17) {
        let bars = history::bars(key, now, 0).unwrap();
        let events = history::ex_events(key, today).unwrap();
        let factors = history::factors(key, today).unwrap();
        assert_eq!(factors.len(), events.len());
        let f_at = |d: NaiveDate| {
            factors
                .iter()
                .rev()
                .find(|(x, _)| *x <= d)
                .map_or(1.0, |(_, f)| *f)
        };
        for e in &events {
            let i = bars
                .iter()
                .position(|b| b.date == e.ex_date)
                .expect("a bar on the ex-date");
            let (prev, ex) = (&bars[i - 1], &bars[i]);
            assert_eq!(history::trading_days(e.record_date, e.ex_date).len(), 2);
            assert_eq!(prev.close, e.close_before, "{key} {e:?}");
            assert_eq!(ex.prev_close, e.reference, "{key} {e:?}");
            assert!(e.reference < e.close_before, "{key} {e:?}");
            let ten = cents(e.close_before) * 10 - cents(e.cash_per_10);
            assert_eq!(
                cents(e.reference),
                (ten as f64 / f64::from(10 + e.bonus_per_10)).round() as i64
            );
            // hfq = raw * F(d) is continuous: F(ex) / F(prev) = close(prev) / reference(ex).
            let lhs = f_at(ex.date) / f_at(prev.date);
            let rhs = prev.close / ex.prev_close;
            assert!((lhs / rhs - 1.0).abs() < 1e-12, "{key} {e:?}");
            if e.bonus_per_10 > 0 {
                assert!(e.factor > 1.19 && e.factor < 1.5, "{e:?}");
            } else {
                assert!(e.factor > 1.0 && e.factor < 1.06, "{e:?}");
            }
            assert!((5..=9).contains(&e.ex_date.month()), "{e:?}");
            checked += 1;
        }
        // Without an event, the reference previous close is the previous bar's close.
        for w in bars.windows(2) {
            if !events.iter().any(|e| e.ex_date == w[1].date) {
                assert_eq!(w[1].prev_close, w[0].close, "{key} {:?}", w[1]);
            }
        }

        // Sina's factor file says the same, newest first, sentinel last.
        let (status, js) = body(&format!("/realstock/company/{key}/hfq.js"), now, 0);
        assert_eq!(status, 200);
        let prefix = format!("var {key}hfq=");
        assert!(js.starts_with(&prefix), "{js}");
        let end = js.find("};").unwrap() + 1;
        let v: Value = serde_json::from_str(&js[prefix.len()..end]).unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(v["total"], data.len());
        assert_eq!(data.last().unwrap()["d"], "1900-01-01");
        assert_eq!(data.last().unwrap()["f"], "1.0000000000000000");
        for (entry, (d, f)) in data.iter().zip(factors.iter().rev()) {
            assert_eq!(entry["d"], d.to_string());
            let text = entry["f"].as_str().unwrap();
            assert_eq!(text.split('.').nth(1).unwrap().len(), 16);
            assert!((text.parse::<f64>().unwrap() / f - 1.0).abs() < 1e-14);
        }

        // Eastmoney hfq and qfq are raw times F(d) and F(d) / F(today).
        if !events.is_empty() && adjusted_checked < 12 {
            adjusted_checked += 1;
            let latest = factors.last().unwrap().1;
            for (fqt, scale) in [(1, Some(latest)), (2, None)] {
                let v = json(
                    &format!(
                        "/api/qt/stock/kline/get?secid={}&klt=101&fqt={fqt}&beg=0&end=20500101",
                        secid(key)
                    ),
                    now,
                );
                let lines = em_klines(&v);
                assert_eq!(lines.len(), bars.len());
                for (l, b) in lines.iter().zip(&bars) {
                    let k = match scale {
                        Some(latest) => f_at(b.date) / latest,
                        None => f_at(b.date),
                    };
                    let expected = (cents(b.close) as f64 * k).round() as i64;
                    assert_eq!(
                        cents(l[2].parse().unwrap()),
                        expected,
                        "{key} fqt={fqt} {l:?}"
                    );
                }
            }
            // Tencent's qfq rows agree with Eastmoney's.
            let v = json(
                &format!("/appstock/app/fqkline/get?param={key},day,,,640,qfq"),
                now,
            );
            let rows = v["data"][key.as_str()]["qfqday"].as_array().unwrap();
            let tail = &bars[bars.len() - rows.len()..];
            for (r, b) in rows.iter().zip(tail) {
                let k = f_at(b.date) / latest;
                let expected = (cents(b.close) as f64 * k).round() as i64;
                assert_eq!(cents(r[2].as_str().unwrap().parse().unwrap()), expected);
            }
        }
    }
    assert!(checked > 1000, "{checked} events checked");
    assert_eq!(adjusted_checked, 12);
}

#[test]
fn tencent_marks_ex_dates() {
    let now = at("2026-11-30T16:00:00+08:00");
    for bonus in [false, true] {
        let (key, e) = stock_with_event(2026, bonus);
        let v = json(
            &format!("/appstock/app/fqkline/get?param={key},day,2026-01-01,2026-12-31,640,"),
            now,
        );
        let rows = v["data"][key.as_str()]["day"].as_array().unwrap();
        let marked: Vec<&Value> = rows
            .iter()
            .filter(|r| r.as_array().unwrap().len() == 7)
            .collect();
        assert_eq!(marked.len(), 1, "{key}");
        let dict = &marked[0][6];
        assert_eq!(marked[0][0], e.ex_date.to_string());
        assert_eq!(dict["cqr"], e.ex_date.to_string());
        assert_eq!(dict["djr"], e.record_date.to_string());
        assert_eq!(dict["nd"], "2025");
        let cash: f64 = dict["fh_sh"].as_str().unwrap().parse().unwrap();
        assert_eq!(cash, e.cash_per_10);
        let content = dict["FHcontent"].as_str().unwrap();
        if bonus {
            assert!(
                content.starts_with(&format!("10送{}股派", e.bonus_per_10)),
                "{content}"
            );
        } else {
            assert_eq!(
                content,
                format!("10派{}元", dict["fh_sh"].as_str().unwrap())
            );
        }
        // Adjusted rows carry no dict.
        let v = json(
            &format!("/appstock/app/fqkline/get?param={key},day,2026-01-01,2026-12-31,640,hfq"),
            now,
        );
        assert!(v["data"][key.as_str()]["hfqday"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.as_array().unwrap().len() == 6));
    }
}

#[test]
fn realtime_prev_close_is_the_history() {
    // An ordinary day: the previous bar's close.
    let now = at("2026-03-10T10:00:00+08:00");
    for key in keys().iter().step_by(29) {
        let q = market_quote_on(key, 4, now).unwrap();
        let bars = history::bars(key, now, 4).unwrap();
        assert_eq!(
            Some(q.prev_close),
            history::prev_close(key, now.date_naive())
        );
        let Some(last) = bars.last() else { continue };
        if last.date == now.date_naive() {
            assert_eq!(last.prev_close, q.prev_close, "{key}");
            assert_eq!(
                (
                    last.open,
                    last.high,
                    last.low,
                    last.close,
                    last.volume,
                    last.amount
                ),
                (q.open, q.high, q.low, q.price, q.volume, q.amount),
                "{key}"
            );
        } else {
            assert!(
                q.suspended || history::listing_date(key).unwrap() > now.date_naive(),
                "{key}"
            );
        }
        if !q.suspended && history::listing_date(key).unwrap() < date("2026-03-01") {
            let before: Vec<&MockBar> = bars.iter().filter(|b| b.date < now.date_naive()).collect();
            let ex_today = history::ex_dates(key, now.date_naive()).contains(&now.date_naive());
            if !ex_today {
                assert_eq!(q.prev_close, before.last().unwrap().close, "{key}");
            }
        }
    }
    // An ex-date: the ex-reference price, not the last close.
    for bonus in [false, true] {
        let (key, e) = stock_with_event(2026, bonus);
        let now = DateTime::parse_from_rfc3339(&format!("{}T10:00:00+08:00", e.ex_date)).unwrap();
        let q = market_quote_on(&key, 4, now).unwrap();
        assert_eq!(q.prev_close, e.reference, "{key}");
        assert_ne!(q.prev_close, e.close_before);
        let bars = history::bars(&key, now, 4).unwrap();
        let last = bars.last().unwrap();
        assert_eq!(
            (last.date, last.prev_close, last.close),
            (e.ex_date, e.reference, q.price)
        );
        // The day before, the realtime previous close was an ordinary one.
        let day_before = bars[bars.len() - 2].date;
        let prev_day = history::prev_close(&key, day_before).unwrap();
        assert_eq!(prev_day, bars[bars.len() - 2].prev_close);
    }
}

#[test]
fn todays_bar_follows_the_session() {
    let key = "sh600000";
    let last = |when: &str, tick: u64| history::bars(key, at(when), tick).unwrap().pop().unwrap();
    let quote = |when: &str, tick: u64| market_quote_on(key, tick, at(when)).unwrap();

    // Before 09:30 and on the weekend: Friday's bar is the last.
    assert_eq!(
        last("2026-11-30T09:29:59+08:00", 3).date,
        date("2026-11-27")
    );
    assert_eq!(
        last("2026-11-28T11:00:00+08:00", 3).date,
        date("2026-11-27")
    );
    assert_eq!(
        last("2026-11-29T16:00:00+08:00", 3).date,
        date("2026-11-27")
    );
    // A holiday (2026-10-01): the last bar is 2026-09-30's.
    assert_eq!(
        last("2026-10-01T11:00:00+08:00", 3).date,
        date("2026-09-30")
    );
    // The same instant in another offset.
    assert_eq!(
        last("2026-11-30T01:29:00+00:00", 3).date,
        date("2026-11-27")
    );
    assert_eq!(
        last("2026-11-30T01:31:00+00:00", 3).date,
        date("2026-11-30")
    );

    for (when, tick) in [
        ("2026-11-30T09:30:00+08:00", 0),
        ("2026-11-30T10:00:00+08:00", 5),
        ("2026-11-30T14:59:00+08:00", 6),
        ("2026-11-30T15:00:00+08:00", 6),
        ("2026-11-30T20:00:00+08:00", 7),
        ("2026-11-30T20:00:00+08:00", 8),
    ] {
        let (b, q) = (last(when, tick), quote(when, tick));
        assert_eq!(b.date, date("2026-11-30"));
        assert_eq!(
            (
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                b.amount,
                b.prev_close
            ),
            (
                q.open,
                q.high,
                q.low,
                q.price,
                q.volume,
                q.amount,
                q.prev_close
            ),
            "{when}"
        );
    }
    // During the session the tick moves today's bar; from 15:00 it is settled: the tick no
    // longer moves it, and the days after see the same bar.
    assert_ne!(
        last("2026-11-30T10:00:00+08:00", 5),
        last("2026-11-30T10:00:00+08:00", 6)
    );
    let settled = last("2026-11-30T15:00:00+08:00", 6);
    assert_eq!(settled, last("2026-11-30T23:59:59+08:00", 60));
    let tuesday = history::bars(key, at("2026-12-01T10:00:00+08:00"), 3).unwrap();
    assert_eq!(tuesday[tuesday.len() - 2], settled);
    assert_eq!(
        quote("2026-12-01T09:00:00+08:00", 3).prev_close,
        settled.close
    );
    for k in ["sz000001", "sh000300", "sh688001"] {
        let q = market_quote_on(k, 11, at("2026-11-30T15:30:00+08:00")).unwrap();
        let later = history::bars(k, at("2026-12-02T09:00:00+08:00"), 0).unwrap();
        let b = later.iter().find(|b| b.date == date("2026-11-30")).unwrap();
        assert_eq!(
            (q.open, q.high, q.low, q.price, q.volume, q.amount),
            (b.open, b.high, b.low, b.close, b.volume, b.amount)
        );
    }
    // The previous close is Friday's close, whatever the time.
    let friday = last("2026-11-28T11:00:00+08:00", 3).close;
    assert_eq!(quote("2026-11-30T09:00:00+08:00", 1).prev_close, friday);
    assert_eq!(quote("2026-11-30T13:00:00+08:00", 2).prev_close, friday);
}

#[test]
fn suspended_stocks_have_no_recent_bars() {
    let today = date("2026-11-30");
    let now = at("2026-11-30T14:00:00+08:00");
    let suspended: Vec<String> = keys()
        .into_iter()
        .filter(|k| market_quote_on(k, 0, now).unwrap().suspended)
        .take(12)
        .collect();
    assert!(suspended.len() >= 10);
    for key in &suspended {
        let windows = history::suspensions(key, today).unwrap();
        let (start, end) = *windows.last().unwrap();
        assert_eq!(end, today);
        let n = history::trading_days(start, end).len();
        assert!((10..=60).contains(&n), "{key} {n}");
        let bars = history::bars(key, now, 0).unwrap();
        let last = bars.last().unwrap();
        assert!(last.date < start);
        assert_eq!(history::trading_days(last.date, start).len(), 2, "{key}");
        let q = market_quote_on(key, 0, now).unwrap();
        assert_eq!(q.prev_close, last.close);
        assert_eq!(q.price, last.close);
    }
}

#[test]
fn listings_and_historical_suspensions() {
    let today = date("2026-11-30");
    let now = at("2026-11-30T16:00:00+08:00");
    let all = keys();
    let listings: Vec<NaiveDate> = all
        .iter()
        .map(|k| history::listing_date(k).unwrap())
        .collect();
    assert!(listings.iter().all(|d| history::is_trading_day(*d)));
    assert!(listings
        .iter()
        .all(|d| *d >= date("1990-12-19") && *d < date("2026-11-27")));
    let old = listings.iter().filter(|d| d.year() <= 2014).count();
    let recent = listings.iter().filter(|d| d.year() >= 2019).count();
    let last_year = listings
        .iter()
        .filter(|d| **d >= date("2025-12-01"))
        .count();
    assert!(old > all.len() / 2, "{old}");
    assert!(recent > 500, "{recent}");
    assert!((20..400).contains(&last_year), "{last_year}");
    assert_eq!(history::listing_date("sh600000"), Some(date("1999-11-10")));
    assert_eq!(history::listing_date("sh000001"), Some(date("2005-01-04")));
    assert!(history::listing_date("sh688001").unwrap() >= date("2019-07-22"));
    assert_eq!(history::listing_date("sh999999"), None);

    // A recently listed stock: no bars before listing; the first bar is the listing day.
    let idx = listings.iter().position(|d| d.year() == 2026).unwrap();
    let key = &all[idx];
    let bars = history::bars(key, now, 0).unwrap();
    assert_eq!(bars[0].date, listings[idx]);
    assert!(history::bars(key, at("2019-06-03T16:00:00+08:00"), 0)
        .unwrap()
        .is_empty());

    // Stocks with a historical window in 2024: no bars inside it.
    let mut found = 0;
    for key in all.iter().skip(3) {
        let windows = history::suspensions(key, today).unwrap();
        let Some(&(start, end)) = windows.iter().find(|w| w.0.year() == 2024) else {
            continue;
        };
        let bars =
            history::bars_between(key, date("2023-06-01"), date("2025-12-31"), now, 0).unwrap();
        assert!(bars.iter().all(|b| b.date < start || b.date > end), "{key}");
        let n = history::trading_days(start, end).len();
        assert!((3..=50).contains(&n), "{key} {n}");
        // The first bar after the window refers to the last close before it.
        let after = bars.iter().position(|b| b.date > end).unwrap();
        if !history::ex_dates(key, today).contains(&bars[after].date) {
            assert_eq!(bars[after].prev_close, bars[after - 1].close);
        }
        found += 1;
        if found == 10 {
            break;
        }
    }
    assert_eq!(found, 10);
}

#[test]
fn calendar() {
    let closures = [
        "2024-01-01",
        "2024-02-09",
        "2024-02-16",
        "2024-04-04",
        "2024-05-03",
        "2024-06-10",
        "2024-09-17",
        "2024-10-07",
        "2025-01-28",
        "2025-02-04",
        "2025-05-05",
        "2025-10-08",
        "2026-01-02",
        "2026-02-23",
        "2026-06-19",
        "2026-09-25",
        "2026-10-07",
    ];
    for d in closures {
        assert!(!history::is_trading_day(date(d)), "{d}");
    }
    assert_eq!(
        history::trading_days(date("2024-01-01"), date("2024-12-31")).len(),
        242
    );
    assert_eq!(
        history::trading_days(date("2025-01-01"), date("2025-12-31")).len(),
        243
    );
    assert!(history::is_trading_day(date("2026-11-27")));
    assert!(!history::is_trading_day(date("2026-11-28")));
    // Other years by rule: a plausible count, New Year and National Day closed.
    for y in [1995, 2010, 2023, 2027, 2050] {
        let n =
            history::trading_days(date(&format!("{y}-01-01")), date(&format!("{y}-12-31"))).len();
        assert!((238..=250).contains(&n), "{y} {n}");
        assert!(!history::is_trading_day(date(&format!("{y}-10-03"))));
    }
    let days = history::trading_days(date("2026-11-23"), date("2026-11-30"));
    assert!(days
        .iter()
        .all(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)));
    assert_eq!(days.len(), 6);
    assert!(history::trading_days(date("2026-12-01"), date("2026-11-30")).is_empty());
}

#[test]
fn bad_queries_get_error_shapes_not_panics() {
    let now = at("2026-11-30T10:00:00+08:00");
    let em = "/api/qt/stock/kline/get";
    let rc = |q: &str| {
        let (status, text) = body(&format!("{em}?{q}"), now, 0);
        assert_eq!(status, 200, "{q}");
        serde_json::from_str::<Value>(&text).unwrap()["rc"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(rc("secid=1.999999&klt=101&fqt=0&beg=0&end=20500101"), 102);
    assert_eq!(rc("secid=garbage&klt=101"), 102);
    assert_eq!(rc("secid=1.600000&klt=101&beg=2024-01-01"), 102);
    assert_eq!(rc("secid=1.600000&klt=101&end=20241301"), 102);
    assert_eq!(rc("secid=1.600000&klt=101&fqt=7"), 102);
    assert_eq!(rc("secid=1.600000&klt=101&lmt=-1"), 102);
    assert_eq!(
        rc("secid=1.600000&klt=101&lmt=99999999999999999999999&end=99991231"),
        0
    );
    let (status, _) = body(&format!("{em}?secid=1.600000&klt=102"), now, 0);
    assert_eq!(status, 400);
    let (status, _) = body(&format!("{em}?secid=1.600000&klt=101&cb=a(b)"), now, 0);
    assert_eq!(status, 400);
    // An empty range: rc 0, no klines, the whole history's total.
    let v = json(
        &format!("{em}?secid=1.600000&klt=101&beg=19800101&end=19900101"),
        now,
    );
    assert_eq!(v["rc"], 0);
    assert_eq!(em_klines(&v).len(), 0);
    assert_eq!(
        v["data"]["dktotal"],
        history::bars("sh600000", now, 0).unwrap().len()
    );
    let v = json(
        &format!("{em}?secid=1.600000&klt=101&beg=20261201&end=20261231"),
        now,
    );
    assert_eq!(em_klines(&v).len(), 0);

    let tx = |p: &str| json(&format!("/appstock/app/fqkline/get?param={p}"), now);
    assert_eq!(
        tx("sh999999,day,,,640,qfq")["data"]["sh999999"],
        serde_json::json!({"day":[],"qt":{"sh999999":[],"market":["2026-11-30 10:00:00|SH_open_交易中|SZ_open_交易中|BJ_open_交易中"]},"mx_price":{"mx":[],"price":[]},"prec":"","version":"16"})
    );
    assert_eq!(
        tx("x\"y,day,,,1,")["data"]["x\"y"]["day"],
        serde_json::json!([])
    );
    assert_eq!(tx(",day,,,1,")["code"], -1);
    assert_eq!(tx("sh600000,day,2024-13-01,,640,qfq")["code"], -1);
    assert_eq!(tx("sh600000,day,,,many,qfq")["code"], -1);
    assert_eq!(tx("sh600000,day,,,640,xfq")["code"], -1);
    assert_eq!(tx("sh600000,hour,,,640,")["code"], -1);
    assert_eq!(tx("")["code"], -1);
    assert_eq!(
        tx("sh600000,day,2026-01-01,2025-01-01,640,")["data"]["sh600000"]["day"],
        serde_json::json!([])
    );
    assert_eq!(
        tx("sh000001,day,,,5,qfq")["data"]["sh000001"]["day"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let (status, _) = body(
        "/appstock/app/fqkline/get?param=sh600000,week,,,640,",
        now,
        0,
    );
    assert_eq!(status, 400);

    let sina = "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData";
    assert_eq!(
        json(&format!("{sina}?symbol=sh999999&scale=240&datalen=5"), now),
        Value::Null
    );
    assert_eq!(
        json(&format!("{sina}?scale=240&datalen=5"), now),
        Value::Null
    );
    assert_eq!(
        body(&format!("{sina}?symbol=sh600000&scale=5&datalen=5"), now, 0).0,
        400
    );
    assert_eq!(
        body(&format!("{sina}?symbol=sh600000&datalen=abc"), now, 0).0,
        400
    );
    assert_eq!(
        json(&format!("{sina}?symbol=sh600000&datalen=0"), now),
        serde_json::json!([])
    );
    // Listed later than today: known, no bars.
    let late = keys()
        .into_iter()
        .find(|k| history::listing_date(k).unwrap().year() == 2026)
        .unwrap();
    let early = at("2020-06-01T10:00:00+08:00");
    assert_eq!(
        json(&format!("{sina}?symbol={late}&datalen=5"), early),
        serde_json::json!([])
    );

    assert_eq!(body("/realstock/company/sh999999/hfq.js", now, 0).0, 404);
    assert_eq!(body("/realstock/company//hfq.js", now, 0).0, 404);
    assert!(history::history_body("/list=sh600000", now, 0).is_none());

    // Garbage of every kind: some answer, never a panic.
    let mut rng = fastrand_like(7);
    let pieces = [
        "secid=1.600000",
        "secid=0.000001",
        "secid=1.000300",
        "klt=101",
        "fqt=1",
        "fqt=2",
        "beg=0",
        "end=20500101",
        "lmt=1",
        "lmt=0",
        "lmt=18446744073709551616",
        "beg=99999999",
        "end=00000000",
        "cb=x",
        "fields1=f9",
        "fields2=f99,f51",
        "fields2=",
        "param=",
        "param=sh600000,day,,,0,",
        "param=sh600000,day,9999-12-31,0001-01-01,5,hfq",
        "param=,,,,,",
        "_var=k",
        "symbol=sh600000",
        "datalen=1",
        "scale=240",
        "%ZZ",
        "&&",
        "=",
    ];
    let paths = [
        em,
        "/appstock/app/fqkline/get",
        sina,
        "/realstock/company/sh600000/hfq.js",
    ];
    for _ in 0..400 {
        let path = paths[rng() % paths.len()];
        let q: Vec<&str> = (0..rng() % 6)
            .map(|_| pieces[rng() % pieces.len()])
            .collect();
        let (status, _) = body(&format!("{path}?{}", q.join("&")), now, 0);
        assert!([200, 400, 404].contains(&status));
    }
}

/// A small deterministic generator (the tests need no randomness crate).
fn fastrand_like(seed: u64) -> impl FnMut() -> usize {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 16) as usize
    }
}

#[test]
fn caps_and_limits() {
    let now = at("2026-11-30T16:00:00+08:00");
    let rows = json(
        "/appstock/app/fqkline/get?param=sh600000,day,,,100000,qfq",
        now,
    );
    assert_eq!(
        rows["data"]["sh600000"]["qfqday"].as_array().unwrap().len(),
        640
    );
    let rows = json("/appstock/app/fqkline/get?param=sh600000,day,,,,", now);
    assert_eq!(
        rows["data"]["sh600000"]["day"].as_array().unwrap().len(),
        640
    );
    let rows = json(
        "/appstock/app/fqkline/get?param=sh600000,day,2026-11-01,2026-11-30,10,",
        now,
    );
    let rows = rows["data"]["sh600000"]["day"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9][0], "2026-11-30");
    let sina = "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol=sh600000";
    assert_eq!(
        json(&format!("{sina}&datalen=5000"), now)
            .as_array()
            .unwrap()
            .len(),
        1023
    );
    assert_eq!(json(sina, now).as_array().unwrap().len(), 1023);
    assert_eq!(
        json(&format!("{sina}&datalen=3"), now)
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Moving averages unless ma=no: 5, 10 and 30 days by default, when that many bars exist.
    let bars = history::bars("sh600000", now, 0).unwrap();
    let v = json(&format!("{sina}&datalen=2"), now);
    let row = v[1].as_object().unwrap();
    for n in [5, 10, 30] {
        let window = &bars[bars.len() - n..];
        let mean = window.iter().map(|b| b.close).sum::<f64>() / n as f64;
        assert!((row[&format!("ma_price{n}")].as_f64().unwrap() - mean).abs() < 0.0006);
        let volume = window.iter().map(|b| b.volume as f64).sum::<f64>() / n as f64;
        assert_eq!(
            row[&format!("ma_volume{n}")].as_f64().unwrap(),
            volume.round()
        );
    }
    let v = json(&format!("{sina}&datalen=1&ma=5,250"), now);
    assert_eq!(v[0].as_object().unwrap().len(), 10, "{v}");
    let listed = history::listing_date("sh688001").unwrap();
    let third = history::trading_days(listed, listed + chrono::Days::new(10))[2];
    let young = at(&format!("{third}T16:00:00+08:00"));
    let v = json(
        "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol=sh688001&ma=2,5",
        young,
    );
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert!(v[0].get("ma_price2").is_none() && v[1].get("ma_price2").is_some());
    assert!(v[2].get("ma_price5").is_none());
    let em = "/api/qt/stock/kline/get?secid=1.600000&klt=101";
    let v = json(&format!("{em}&end=20261127&lmt=3"), now);
    let lines = em_klines(&v);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2][0], "2026-11-27");
    // fields2 picks and orders the fields; fields1 the data keys.
    let v = json(&format!("{em}&lmt=1&fields1=f1,f3&fields2=f53,f51"), now);
    let data = v["data"].as_object().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["code", "klines", "name"]);
    let line = &em_klines(&v)[0];
    assert_eq!(line.len(), 2);
    assert_eq!(line[1], "2026-11-30");
}

// ---------------------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------------------

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    assert!(!head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    (status, rest.to_string())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, "").await
}

#[tokio::test]
async fn over_http() {
    let now = at("2026-11-30T10:00:00+08:00");
    let mock = MockUpstream::start(MockConfig {
        now: Some(now),
        referer_check: false,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let addr = mock.addr();
    mock.set_tick(3);
    assert_eq!(mock.now(), now);

    // The clock: in the config, and in the realtime answers' stamps.
    let config: Value = serde_json::from_str(&get(addr, "/__mock/config").await.1).unwrap();
    assert_eq!(config["now"], "2026-11-30T10:00:00+08:00");
    let (_, sina) = get(addr, "/list=sh600000").await;
    assert!(sina.contains(",2026-11-30,10:00:00,00,"), "{sina}");
    let (status, config) = http(
        addr,
        "POST",
        "/__mock/config",
        r#"{"now":"2025-07-01T14:00:00+08:00"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&config).unwrap()["now"],
        "2025-07-01T14:00:00+08:00"
    );
    let (_, tencent) = get(addr, "/q=sz000001").await;
    assert!(tencent.contains("~20250701140000~"), "{tencent}");
    let q: Value = serde_json::from_str(&get(addr, "/__mock/quote/sz000001").await.1).unwrap();
    assert_eq!(
        q["prev_close"].as_f64(),
        history::prev_close("sz000001", date("2025-07-01"))
    );
    assert_eq!(
        http(addr, "POST", "/__mock/config", r#"{"now":"yesterday"}"#)
            .await
            .0,
        400
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/__mock/config",
            r#"{"now":"1900-01-01T00:00:00+08:00"}"#
        )
        .await
        .0,
        400
    );
    assert_eq!(
        http(addr, "POST", "/__mock/config", r#"{"now":5}"#).await.0,
        400
    );
    let (_, config) = http(addr, "POST", "/__mock/config", r#"{"now":null}"#).await;
    assert_eq!(
        serde_json::from_str::<Value>(&config).unwrap()["now"],
        Value::Null
    );
    assert!(
        (mock.now() - chrono::Utc::now().fixed_offset())
            .num_seconds()
            .abs()
            < 5
    );
    let (_, config) = http(
        addr,
        "POST",
        "/__mock/config",
        r#"{"now":"2026-11-30 10:00:00"}"#,
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&config).unwrap()["now"],
        "2026-11-30T10:00:00+08:00"
    );
    // Other settings leave the clock alone.
    http(addr, "POST", "/__mock/config", r#"{"latency_ms":0}"#).await;
    assert_eq!(mock.now(), now);
    mock.reset_counts();

    // The endpoints answer what history_body answers.
    let paths = [
        "/api/qt/stock/kline/get?secid=0.000001&klt=101&fqt=1&beg=20260101&end=20500101",
        "/appstock/app/fqkline/get?param=sz000001,day,2026-01-01,2026-12-31,640,qfq",
        "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol=sz000001&scale=240&ma=no&datalen=30",
        "/realstock/company/sz000001/hfq.js",
    ];
    for p in paths {
        let (status, text) = get(addr, p).await;
        assert_eq!((status, text), body(p, now, 3), "{p}");
    }
    assert_eq!(
        mock.history_counts(),
        HistoryCounts {
            eastmoney_kline: 1,
            tencent_kline: 1,
            sina_kline: 1,
            sina_factors: 1,
            total: 4
        }
    );
    assert_eq!(mock.requests().total, 0);
    let stats: Value = serde_json::from_str(&get(addr, "/__mock/stats").await.1).unwrap();
    assert_eq!(stats["history"]["total"], 4);
    assert_eq!(stats["history"]["sina_factors"], 1);
    assert_eq!(stats["requests"]["total"], 0);

    // The control view of the history.
    let view: Value = serde_json::from_str(&get(addr, "/__mock/history/sz000001").await.1).unwrap();
    let bars = mock.history("sz000001").unwrap();
    assert_eq!(view["bars"].as_array().unwrap().len(), bars.len());
    assert_eq!(view["bars"][bars.len() - 1]["date"], "2026-11-30");
    assert_eq!(
        view["bars"][bars.len() - 1]["close"].as_f64(),
        Some(bars.last().unwrap().close)
    );
    assert_eq!(view["bars"][0]["volume"].as_u64(), Some(bars[0].volume));
    let factors = history::factors("sz000001", date("2026-11-30")).unwrap();
    assert_eq!(view["factors"].as_array().unwrap().len(), factors.len());
    assert_eq!(get(addr, "/__mock/history/xx123").await.0, 404);
    assert_eq!(mock.history_counts().total, 4);

    // JSONP.
    let (_, text) = get(
        addr,
        "/api/qt/stock/kline/get?secid=1.600000&klt=101&lmt=2&cb=jQuery1124_17",
    )
    .await;
    assert!(
        text.starts_with("jQuery1124_17({\"rc\":0,") && text.ends_with("});"),
        "{text}"
    );
    let (_, text) = get(
        addr,
        "/api/qt/stock/kline/get?secid=1.699999&klt=101&cb=cb1",
    )
    .await;
    assert!(
        text.starts_with("cb1({\"rc\":102,") && text.ends_with("\"data\":null});"),
        "{text}"
    );
    let (_, text) = get(
        addr,
        "/appstock/app/fqkline/get?_var=kline_dayqfq&param=sh600000,day,,,2,qfq",
    )
    .await;
    assert!(text.starts_with("kline_dayqfq={\"code\":0,"), "{text}");
    serde_json::from_str::<Value>(&text["kline_dayqfq=".len()..]).unwrap();

    // Unknown symbols, counted like any request.
    mock.reset_counts();
    assert_eq!(mock.history_counts(), HistoryCounts::default());
    assert_eq!(get(addr, "/realstock/company/sh999999/hfq.js").await.0, 404);
    let (status, text) = get(
        addr,
        "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol=sh999999",
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "null"));
    assert_eq!(mock.history_counts().total, 2);

    // Outages and failures.
    mock.set_down("sina", true);
    assert_eq!(get(addr, "/realstock/company/sh600000/hfq.js").await.0, 500);
    assert_eq!(
        get(
            addr,
            "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol=sh600000"
        )
        .await
        .0,
        500
    );
    assert_eq!(
        get(addr, "/appstock/app/fqkline/get?param=sh600000,day,,,2,")
            .await
            .0,
        200
    );
    assert_eq!(
        get(addr, "/api/qt/stock/kline/get?secid=1.600000&klt=101&lmt=2")
            .await
            .0,
        200
    );
    mock.set_down("sina", false);
    http(
        addr,
        "POST",
        "/__mock/config",
        r#"{"down":["eastmoney","tencent"]}"#,
    )
    .await;
    assert_eq!(
        get(addr, "/api/qt/stock/kline/get?secid=1.600000&klt=101&lmt=2")
            .await
            .0,
        500
    );
    assert_eq!(
        get(addr, "/appstock/app/fqkline/get?param=sh600000,day,,,2,")
            .await
            .0,
        500
    );
    assert_eq!(get(addr, "/realstock/company/sh600000/hfq.js").await.0, 200);
    http(
        addr,
        "POST",
        "/__mock/config",
        r#"{"down":[],"failure_rate":1.0}"#,
    )
    .await;
    for p in paths {
        assert_eq!(get(addr, p).await.0, 500, "{p}");
    }
    mock.set_failure_rate(0.0);
    assert_eq!(
        mock.history_counts(),
        HistoryCounts {
            eastmoney_kline: 3,
            tencent_kline: 3,
            sina_kline: 3,
            sina_factors: 4,
            total: 13
        }
    );
    assert_eq!(mock.requests().total, 0);

    // Latency applies too.
    mock.set_latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    get(addr, "/realstock/company/sh600000/hfq.js").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    mock.set_latency(Duration::ZERO);

    // Not GET: not an upstream.
    assert_eq!(
        http(addr, "POST", "/realstock/company/sh600000/hfq.js", "")
            .await
            .0,
        404
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn the_clock_from_the_config() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let config: Value = serde_json::from_str(&get(mock.addr(), "/__mock/config").await.1).unwrap();
    assert_eq!(config["now"], Value::Null);
    let offset = mock.now().offset().local_minus_utc();
    assert_eq!(offset, 8 * 3600);
    mock.set_now(Some(at("2026-12-05T03:00:00+00:00")));
    let config: Value = serde_json::from_str(&get(mock.addr(), "/__mock/config").await.1).unwrap();
    assert_eq!(config["now"], "2026-12-05T03:00:00+00:00");
    // Shown in China time: Saturday 11:00, so Friday's bar is the last.
    assert_eq!(mock.now().to_rfc3339(), "2026-12-05T11:00:00+08:00");
    let bars = mock.history("sh600000").unwrap();
    assert_eq!(bars.last().unwrap().date, date("2026-12-04"));
    assert_eq!(
        mock_upstream::parse_time("2026-11-30T10:00:00+08:00"),
        Some(at("2026-11-30T10:00:00+08:00"))
    );
    assert_eq!(
        mock_upstream::parse_time("2026-11-30 10:00"),
        Some(at("2026-11-30T10:00:00+08:00"))
    );
    assert_eq!(mock_upstream::parse_time("2100-01-01T00:00:00+08:00"), None);
    assert_eq!(mock_upstream::parse_time("tomorrow"), None);
}
