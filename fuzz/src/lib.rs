//! The properties the fuzz targets check, shared by them (one target per file in
//! fuzz_targets/). Each function panics when a property fails; libFuzzer reports the panic
//! as a crash and saves the input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use futures_executor::block_on;
use quantdb::native::FileStore;
use quantdb::store::Record;
use quantdb::{
    Error, MarketCalendar, MarketPhase, Provider, Quote, Store, Stored, Symbol, TtlMode, TtlPolicy,
};

/// The fetch time given to the parsers: 2026-08-21 10:00 in Shanghai, a trading day.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 21, 2, 0, 0).unwrap()
}

/// A quote's numbers are finite.
pub fn assert_finite(q: &Quote) {
    let required = [
        ("current_price", q.current_price),
        ("change", q.change),
        ("change_percent", q.change_percent),
        ("prev_close", q.prev_close),
        ("amount", q.amount),
    ];
    for (name, v) in required {
        assert!(v.is_finite(), "{name} = {v} in {q:?}");
    }
    for (name, v) in [("open", q.open), ("high", q.high), ("low", q.low)] {
        assert!(v.is_none_or(f64::is_finite), "{name} = {v:?} in {q:?}");
    }
}

/// A quote is usable the way the client uses every quote it answers or reads back: its
/// freshness (both TTL modes) and its stale window are worked out from its fetch time, and
/// it is written as JSON (the CLI and the relay).
pub fn assert_usable(q: &Quote) {
    static CALENDAR: OnceLock<MarketCalendar> = OnceLock::new();
    let calendar = CALENDAR.get_or_init(MarketCalendar::default);
    let fetched = q.fetched_at();
    for mode in [TtlMode::Fixed, TtlMode::UntilNextOpen] {
        let policy = TtlPolicy {
            mode,
            ..TtlPolicy::default()
        };
        policy.is_fresh(calendar, fetched, now());
    }
    calendar.next_session_start(fetched);
    serde_json::to_vec(q).expect("a quote is written as JSON");
}

/// An upstream answer: no panic, and every quote is finite, usable and belongs to its slot.
pub fn check_answers(provider: Provider, body: &[u8]) {
    let Ok(answers) = provider.answers(body, now(), MarketPhase::Trading) else {
        return;
    };
    for (symbol, answer) in &answers {
        if let Ok(q) = answer {
            assert_finite(q);
            assert_usable(q);
            assert_eq!(q.key(), Some(*symbol), "{provider} slot {symbol}: {q:?}");
        }
    }
}

/// Symbol text: no panic, and a parsed symbol's key parses back to it both ways.
pub fn check_symbol(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(symbol) = Symbol::parse(text) else {
        return;
    };
    let key = symbol.key();
    assert_eq!(symbol.to_string(), key);
    assert_eq!(Symbol::from_key(&key), Some(symbol), "from_key({key:?})");
    assert_eq!(Symbol::parse(&key).ok(), Some(symbol), "parse({key:?})");
}

/// The symbols the storage targets ask for.
pub const SYMBOLS: [&str; 5] = ["sh600000", "sz000001", "sh000001", "bj430017", "sh688981"];

pub fn symbols() -> Vec<Symbol> {
    SYMBOLS
        .iter()
        .map(|k| Symbol::from_key(k).unwrap())
        .collect()
}

/// Stored bytes, as an IndexedDB record and as a file log record: no panic; a found quote is
/// the asked symbol's and usable, and encoding it again reads back the same quote.
pub fn check_stored(bytes: &[u8]) {
    for symbol in symbols() {
        if let Stored::Found(q) = Record::decode(symbol, bytes) {
            assert_eq!(q.key(), Some(symbol), "record for {symbol}: {q:?}");
            assert_usable(&q);
            let again = Record::encode(&q).expect("a decoded record encodes");
            assert_eq!(Record::decode(symbol, &again), Stored::Found(q));
        }
        if let Stored::Found(q) = Record::decode_compact(symbol, bytes) {
            assert_eq!(q.key(), Some(symbol), "compact record for {symbol}: {q:?}");
            assert_usable(&q);
            let again = Record::encode_compact(&q).expect("a decoded record encodes");
            assert_eq!(Record::decode_compact(symbol, &again), Stored::Found(q));
        }
    }
}

/// The quote the file_log target saves: the published Sina sample, as the parser makes it.
pub fn sample_quote() -> &'static Quote {
    static QUOTE: OnceLock<Quote> = OnceLock::new();
    QUOTE.get_or_init(|| {
        // GBK for 浦发银行, then the sample line of /work/shared/UPSTREAMS.md.
        let mut body = b"var hq_str_sh600000=\"\xc6\xd6\xb7\xa2\xd2\xf8\xd0\xd0".to_vec();
        body.extend_from_slice(
            b",9.090,9.110,9.050,9.150,9.030,9.040,9.050,51270289,465159863.000,375500,9.040,\
              709400,9.030,452100,9.020,714700,9.010,862200,9.000,436555,9.050,284000,9.060,\
              220600,9.070,110065,9.080,351295,9.090,2026-08-21,15:34:58,00,D|36500|330325.00\";\n",
        );
        let answers = (Provider::Sina.answers(&body, now(), MarketPhase::Trading)).unwrap();
        answers.into_iter().next().unwrap().1.unwrap()
    })
}

/// One scratch cache directory per process, reused by every run.
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("quantdb-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("quotes-v2")).unwrap();
        dir
    })
}

fn storage_only<T>(result: Result<T, Error>, what: &str) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(Error::Storage(_)) => None,
        Err(e) => panic!("{what}: an error that is not a storage error: {e:?}"),
    }
}

/// Found quotes are the asked symbols'.
fn check_slots(symbols: &[Symbol], slots: &[Stored]) {
    assert_eq!(slots.len(), symbols.len());
    for (symbol, slot) in symbols.iter().zip(slots) {
        if let Stored::Found(q) = slot {
            assert_eq!(q.key(), Some(*symbol), "slot {symbol}: {q:?}");
            assert_usable(q);
        }
    }
}

/// The file cache's log holding `log`, and the same log with every record's checksum made
/// right (so that what the fuzzer does to a record reaches the record decoder): see
/// [`check_log`].
pub fn check_file_log(log: &[u8]) {
    check_log(log);
    let fixed = with_checksums(log);
    if fixed != log {
        check_log(&fixed);
    }
}

/// `log` with the checksum of each complete line after the header (`<crc32> <key> <payload>`)
/// replaced by the right one.
fn with_checksums(log: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(log.len());
    for (i, line) in log.split_inclusive(|&b| b == b'\n').enumerate() {
        let start = out.len();
        out.extend_from_slice(line);
        if i > 0 && line.len() > 9 && line.ends_with(b"\n") {
            let crc = crc32fast::hash(&line[9..line.len() - 1]);
            out[start..start + 8].copy_from_slice(format!("{crc:08x}").as_bytes());
        }
    }
    out
}

/// The file cache's log holding `log`: open, load, save one quote, load again. No panic, no
/// error but a storage error, found quotes are the asked symbols' (and usable), the saved
/// quote reads back exactly and the other symbols' quotes are as they were.
fn check_log(log: &[u8]) {
    let dir = scratch_dir();
    let path = dir.join("quotes-v2").join("quotes.log");
    std::fs::write(&path, log).expect("the scratch log is writable");
    let Some(store) = storage_only(FileStore::open(dir), "open") else {
        return;
    };
    let symbols = symbols();
    let Some(before) = storage_only(block_on(store.load(&symbols)), "load") else {
        return;
    };
    check_slots(&symbols, &before);
    let saved = sample_quote();
    if storage_only(block_on(store.save(std::slice::from_ref(saved))), "save").is_none() {
        return;
    }
    let Some(after) = storage_only(block_on(store.load(&symbols)), "load after save") else {
        return;
    };
    check_slots(&symbols, &after);
    for ((symbol, old), new) in symbols.iter().zip(&before).zip(&after) {
        if saved.key() == Some(*symbol) {
            assert_eq!(new, &Stored::Found(saved.clone()), "saved {symbol}");
        } else if let Stored::Found(_) = old {
            assert_eq!(new, old, "{symbol} changed by a save of another symbol");
        }
    }
}

/// Every number of a bar is finite (an optional one when present), and the bar is written as
/// JSON.
fn assert_bar(bar: &quantdb::Bar) {
    let required = [bar.open, bar.high, bar.low, bar.close, bar.volume];
    let optional = [
        bar.amount,
        bar.change,
        bar.change_percent,
        bar.amplitude,
        bar.turnover_rate,
    ];
    assert!(required.iter().all(|v| v.is_finite()), "{bar:?}");
    assert!(optional.iter().flatten().all(|v| v.is_finite()), "{bar:?}");
    serde_json::to_vec(bar).expect("a bar is written as JSON");
}

/// The bars as every request could answer them: each adjustment, each period.
fn check_derived(raw: &[quantdb::history::RawBar], factors: Option<&quantdb::history::Factors>) {
    use quantdb::history::{aggregate, derive, Adjust, Period};
    for adjust in [Adjust::None, Adjust::Qfq, Adjust::Hfq] {
        let daily = derive(raw, None, factors, adjust);
        assert_eq!(daily.len(), raw.len());
        for period in [Period::Daily, Period::Weekly, Period::Monthly] {
            for bar in aggregate(&daily, period) {
                assert_bar(&bar);
            }
        }
    }
}

/// A kline answer or a factor file of any upstream: no panic; bars come in date order, one a
/// day; whatever is derived from them (with the factors read from the same bytes, if any) is
/// finite.
pub fn check_history(data: &[u8]) {
    use quantdb::history::{parse_bars, parse_factors};
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let providers = [
        Provider::Eastmoney,
        Provider::Tencent,
        Provider::Sina,
        Provider::Relay,
    ];
    let provider = providers[usize::from(selector) % providers.len()];
    let symbol = symbols()[usize::from(selector / 4) % SYMBOLS.len()];
    let factors = parse_factors(provider, body).ok().flatten();
    if let Some(f) = &factors {
        let rows = f.rows();
        assert!(
            rows.windows(2).all(|w| w[0].0 < w[1].0),
            "factor rows in date order"
        );
        assert!(rows.iter().all(|r| r.1.is_finite() && r.1 > 0.0));
    }
    if let Ok(answer) = parse_bars(provider, symbol, body) {
        assert!(
            answer.bars.windows(2).all(|w| w[0].date < w[1].date),
            "bars in date order"
        );
        check_derived(&answer.bars, factors.as_ref());
    }
}

/// A stored history (a meta record, then the bytes after the first `0xff` as every year's
/// record it names): no panic; what is read encodes and reads back the same.
pub fn check_history_record(data: &[u8]) {
    use quantdb::history::SymbolHistory;
    let (meta, year) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    for symbol in symbols() {
        let Ok((mut history, years)) = SymbolHistory::decode_meta(symbol, meta) else {
            continue;
        };
        if years
            .iter()
            .take(3)
            .all(|&y| history.decode_year(symbol, y, year).is_ok())
        {
            let (mut back, back_years) =
                SymbolHistory::decode_meta(symbol, &history.encode_meta(symbol)).unwrap();
            for y in back_years {
                back.decode_year(symbol, y, &history.encode_year(symbol, y))
                    .unwrap();
            }
            assert_eq!(back.bars, history.bars);
            assert_eq!(back.coverage, history.coverage);
            check_derived(&history.bars, history.factors.as_ref().map(|f| &f.table));
        }
    }
}
