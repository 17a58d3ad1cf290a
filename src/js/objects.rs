//! Quotes to JavaScript objects in one crossing of the boundary.
//!
//! Converting field by field (serde-wasm-bindgen) costs a call into JavaScript per value and a
//! `TextDecoder` call per string: about 0.25 ms for 100 quotes, most of a warm batch. Here the
//! answer is encoded into three flat buffers instead (the numbers, the end of each string, the
//! text of all strings), and `objects.js` builds the objects from them in one call. Strings that
//! repeat (exchanges, sources, phases, fetch times) are stored once per answer, and a fetch time
//! shared by a whole batch is formatted once.
//!
//! The objects are exactly what `JSON.parse` makes of the native JSON (`serde_json`): the same
//! keys in the same order, `null` for `None` and for non-finite numbers, strings as `serde`
//! writes them (enum names, RFC 3339 times). `tests/web.rs` checks this against serde_json.

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::SymbolError;
use crate::quote::{BatchEntry, CacheSource, MarketStatus, Quote};
use crate::symbol::Exchange;
use crate::upstream::Provider;

#[wasm_bindgen(module = "/src/js/objects.js")]
extern "C" {
    #[wasm_bindgen(js_name = buildEntries)]
    fn build_entries(nums: &[f64], ends: &[u32], text: &str) -> js_sys::Array;
}

/// An entry's first number: what it is.
const QUOTE: f64 = 1.0;
const ERROR: f64 = 0.0;
/// A string slot's number for `null`.
const NULL: f64 = -1.0;

/// The strings of one answer: their text end to end, and where each ends (UTF-16 units).
#[derive(Default)]
struct Strings {
    text: String,
    ends: Vec<u32>,
    end: u32,
}

impl Strings {
    /// Adds a string; returns its index.
    fn push(&mut self, s: &str) -> f64 {
        self.text.push_str(s);
        self.end += utf16_len(s) as u32;
        self.ends.push(self.end);
        (self.ends.len() - 1) as f64
    }

    /// Adds the string `value` serialises to (an enum's name, a time); `None` if it is not one.
    fn serialized<T: Serialize>(&mut self, value: &T) -> Option<f64> {
        match serde_json::to_value(value).ok()? {
            serde_json::Value::String(s) => Some(self.push(&s)),
            _ => None,
        }
    }
}

/// The length of `s` in UTF-16 code units, as JavaScript counts it.
fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        return s.len();
    }
    s.bytes()
        .map(|b| match b {
            0x80..=0xBF => 0, // a continuation byte
            0xF0.. => 2,      // the lead of a 4-byte sequence: a surrogate pair
            _ => 1,
        })
        .sum()
}

/// The indexes of strings already added for recent values of one kind.
struct Memo<K>(Vec<(K, f64)>);

impl<K> Default for Memo<K> {
    fn default() -> Self {
        Memo(Vec::new())
    }
}

impl<K: PartialEq + Copy> Memo<K> {
    /// Looks back a few values only: enums have few, and a batch's times mostly repeat.
    const LOOK_BACK: usize = 8;

    fn get(&mut self, key: K, value: &impl Serialize, strings: &mut Strings) -> Option<f64> {
        let mut recent = self.0.iter().rev().take(Self::LOOK_BACK);
        if let Some(&(_, at)) = recent.find(|(k, _)| *k == key) {
            return Some(at);
        }
        let at = strings.serialized(value)?;
        self.0.push((key, at));
        Some(at)
    }
}

/// A JSON number, or NaN for what serde_json writes as `null` (`None`, a non-finite number).
fn number(x: Option<f64>) -> f64 {
    x.filter(|x| x.is_finite()).unwrap_or(f64::NAN)
}

/// An answer being encoded for `objects.js`.
#[derive(Default)]
struct Encoder {
    nums: Vec<f64>,
    strings: Strings,
    exchanges: Memo<Exchange>,
    cache_sources: Memo<CacheSource>,
    providers: Memo<Provider>,
    statuses: Memo<MarketStatus>,
    /// A time with its offset: equal instants in other offsets are written differently.
    times: Memo<(DateTime<FixedOffset>, FixedOffset)>,
}

impl Encoder {
    fn with_capacity(entries: usize) -> Self {
        let mut e = Encoder::default();
        e.nums.reserve(entries * 19);
        e.strings.text.reserve(entries * 32);
        e.strings.ends.reserve(entries * 2 + 16);
        e
    }

    fn time(&mut self, t: &DateTime<FixedOffset>) -> Option<f64> {
        self.times.get((*t, *t.offset()), t, &mut self.strings)
    }

    /// 20 numbers: `QUOTE`, then the fields in declaration order.
    fn quote(&mut self, q: &Quote) -> Option<()> {
        // Every field, by name: a field added to `Quote` does not compile until it is here
        // (and in objects.js).
        let Quote {
            symbol,
            exchange,
            name,
            current_price,
            change,
            change_percent,
            open,
            high,
            low,
            prev_close,
            volume,
            amount,
            quote_time,
            timestamp,
            cache_hit,
            cache_source,
            stale,
            source,
            market_status,
        } = q;
        let symbol = self.strings.push(symbol);
        let exchange = self.exchanges.get(*exchange, exchange, &mut self.strings)?;
        let name = self.strings.push(name);
        let quote_time = match quote_time {
            Some(t) => self.time(t)?,
            None => NULL,
        };
        let timestamp = self.time(timestamp)?;
        let cache_source =
            self.cache_sources
                .get(*cache_source, cache_source, &mut self.strings)?;
        let source = self.providers.get(*source, source, &mut self.strings)?;
        let market_status = self
            .statuses
            .get(*market_status, market_status, &mut self.strings)?;
        self.nums.extend_from_slice(&[
            QUOTE,
            symbol,
            exchange,
            name,
            number(Some(*current_price)),
            number(Some(*change)),
            number(Some(*change_percent)),
            number(*open),
            number(*high),
            number(*low),
            number(Some(*prev_close)),
            *volume as f64,
            number(Some(*amount)),
            quote_time,
            timestamp,
            f64::from(u8::from(*cache_hit)),
            cache_source,
            f64::from(u8::from(*stale)),
            source,
            market_status,
        ]);
        Some(())
    }

    /// 5 numbers: `ERROR`, then the fields in declaration order.
    fn error(&mut self, e: &SymbolError) {
        let SymbolError {
            symbol,
            input,
            error,
            code,
        } = e;
        let symbol = self.strings.push(symbol);
        let input = self.strings.push(input);
        let error = self.strings.push(error);
        let code = self.strings.push(code);
        self.nums
            .extend_from_slice(&[ERROR, symbol, input, error, code]);
    }

    fn build(self) -> js_sys::Array {
        build_entries(&self.nums, &self.strings.ends, &self.strings.text)
    }
}

/// A batch answer as an array of objects; `None` if something cannot be encoded this way
/// (the caller then goes through JSON).
pub(crate) fn entries(list: &[BatchEntry]) -> Option<JsValue> {
    let mut e = Encoder::with_capacity(list.len());
    for entry in list {
        match entry {
            BatchEntry::Quote(q) => e.quote(q)?,
            BatchEntry::Error(err) => e.error(err),
        }
    }
    Some(e.build().into())
}

/// Quotes as an array of objects.
pub(crate) fn quotes(list: &[Quote]) -> Option<JsValue> {
    let mut e = Encoder::with_capacity(list.len());
    for q in list {
        e.quote(q)?;
    }
    Some(e.build().into())
}

/// One quote as an object.
pub(crate) fn quote(q: &Quote) -> Option<JsValue> {
    let mut e = Encoder::with_capacity(1);
    e.quote(q)?;
    Some(e.build().get(0))
}
