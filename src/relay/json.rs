//! Quotes serialised once per fetch, not once per request. A warm relay answers the same
//! quotes to every client until the next fetch, and writing a quote's JSON (its floats, its
//! two times, its escaped name) costs more than everything else a warm request does. The
//! relay keeps each symbol's latest JSON beside the quote it was written from; only
//! `cache_hit` and `cache_source` differ between answers of one fetch, and they are spliced
//! in. The bytes are exactly what `serde_json` writes for the quote.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::{BatchEntry, CacheSource, Quote, Symbol};

/// The most symbols whose JSON is kept: the whole market, with room to spare.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(8192).unwrap();

/// A quote's JSON cut around its `cache_hit` and `cache_source` members.
struct Written {
    /// The quote it was written from (`cache_hit` and `cache_source` are not compared).
    quote: Quote,
    /// Up to the member before `cache_hit`.
    head: Box<[u8]>,
    /// From the member after `cache_source` to the closing brace.
    tail: Box<[u8]>,
}

/// Each symbol's latest quote JSON.
pub(crate) struct QuoteJson(Mutex<LruCache<Symbol, Written>>);

impl Default for QuoteJson {
    fn default() -> Self {
        QuoteJson(Mutex::new(LruCache::new(CAPACITY)))
    }
}

/// The members that differ between answers of one fetch, as serde writes them.
fn served(source: CacheSource) -> &'static [u8] {
    match source {
        CacheSource::Memory => br#","cache_hit":true,"cache_source":"memory""#,
        CacheSource::Disk => br#","cache_hit":true,"cache_source":"disk""#,
        CacheSource::Network => br#","cache_hit":false,"cache_source":"network""#,
    }
}

/// Writes `quote` with serde and cuts it around the served members. `None` if they are not
/// where expected (they always are: the test below holds it to that).
fn write(quote: &Quote) -> Option<Written> {
    let json = serde_json::to_vec(quote).ok()?;
    let cut = served(quote.cache_source);
    // Inside a JSON string every `"` is escaped, so the members' bytes occur only as members.
    let at = json.windows(cut.len()).rposition(|w| w == cut)?;
    Some(Written {
        quote: quote.clone(),
        head: json[..at].into(),
        tail: json[at + cut.len()..].into(),
    })
}

impl QuoteJson {
    /// Appends `quote`'s JSON to `out`.
    fn append(cache: &mut LruCache<Symbol, Written>, quote: &Quote, out: &mut Vec<u8>) {
        let Some(key) = quote.key() else {
            return append_serde(quote, out);
        };
        // `peek`: an entry's age is that of its fetch (what is asked for is written again
        // each fetch), and a hit leaves the LRU's order alone, which saves a third of a lookup.
        if !matches!(cache.peek(&key), Some(w) if w.quote.same_fetch(quote)) {
            match write(quote) {
                Some(w) => {
                    cache.put(key, w);
                }
                None => return append_serde(quote, out),
            }
        }
        match cache.peek(&key) {
            Some(w) => {
                out.extend_from_slice(&w.head);
                out.extend_from_slice(served(quote.cache_source));
                out.extend_from_slice(&w.tail);
            }
            None => append_serde(quote, out),
        }
    }

    /// One quote's JSON.
    pub(crate) fn quote(&self, quote: &Quote) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Self::append(&mut cache, quote, &mut out);
        out
    }

    /// A batch answer's JSON: a list of quotes and per-symbol errors.
    pub(crate) fn batch(&self, entries: &[BatchEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 400 * entries.len());
        out.push(b'[');
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match entry {
                BatchEntry::Quote(q) => Self::append(&mut cache, q, &mut out),
                BatchEntry::Error(e) => append_serde(e, &mut out),
            }
        }
        out.push(b']');
        out
    }
}

fn append_serde(value: &impl serde::Serialize, out: &mut Vec<u8>) {
    // Serialising our own types into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, SymbolError};

    fn quote(name: &str, price: f64, source: CacheSource) -> Quote {
        let json = serde_json::json!({
            "symbol": "600000", "exchange": "SH", "name": name, "current_price": price,
            "change": 0.1, "change_percent": 1.0, "open": null, "high": 10.5, "low": 9.5,
            "prev_close": 10.0, "volume": 1000, "amount": 10000.0,
            "quote_time": "2026-11-30T10:00:00+08:00", "timestamp": "2026-11-30T10:00:01+08:00",
            "cache_hit": false, "cache_source": "network", "stale": false, "source": "sina",
            "market_status": "trading"
        });
        serde_json::from_value::<Quote>(json)
            .unwrap()
            .served_from(source)
    }

    #[test]
    fn the_bytes_are_serdes_for_every_source_and_after_a_new_fetch() {
        let json = QuoteJson::default();
        // A name with the members' own text in it must not confuse the cut.
        let tricky = r#"浦发"银行,"cache_hit":false,"cache_source":"network"\"#;
        for name in ["浦发银行", tricky] {
            for price in [10.1, 10.2] {
                for source in [CacheSource::Network, CacheSource::Memory, CacheSource::Disk] {
                    let q = quote(name, price, source);
                    assert_eq!(json.quote(&q), serde_json::to_vec(&q).unwrap());
                    let stale = q.clone().served_stale(source);
                    assert_eq!(json.quote(&stale), serde_json::to_vec(&stale).unwrap());
                }
            }
        }
        let entries = vec![
            BatchEntry::Quote(quote("浦发银行", 10.3, CacheSource::Memory)),
            BatchEntry::Error(SymbolError::new(
                "zz1",
                &Error::InvalidSymbol {
                    input: "zz1".into(),
                    reason: "not a symbol".into(),
                },
            )),
            BatchEntry::Quote(quote("浦发银行", 10.3, CacheSource::Disk)),
        ];
        assert_eq!(json.batch(&entries), serde_json::to_vec(&entries).unwrap());
        assert_eq!(json.batch(&[]), b"[]");
    }

    #[test]
    fn a_quote_is_written_once_per_fetch() {
        let json = QuoteJson::default();
        let first = quote("浦发银行", 10.1, CacheSource::Network);
        json.quote(&first);
        let kept = |cache: &QuoteJson| {
            let mut c = cache.0.lock().unwrap();
            c.get(&first.key().unwrap()).map(|w| w.head.as_ptr())
        };
        let before = kept(&json);
        json.quote(&first.clone().served_from(CacheSource::Memory));
        assert_eq!(
            kept(&json),
            before,
            "a hit of the same fetch reuses the bytes"
        );
        json.quote(&quote("浦发银行", 10.2, CacheSource::Network));
        assert_ne!(kept(&json), before, "a new fetch is written again");
    }
}
