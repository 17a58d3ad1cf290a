//! The persistent tier's interface. Natively a directory of files, in the browser IndexedDB.

use crate::error::Error;
use crate::platform::{BoxFuture, MaybeSendSync};
use crate::quote::Quote;
use crate::symbol::Symbol;

/// What the persistent tier holds for one symbol.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Found(Quote),
    Missing,
    /// Something is there but it is not a readable entry of ours (treated as a miss).
    Corrupt(String),
}

/// A persistent quote store. Entries keep their fetch time (`Quote::timestamp`), so TTLs hold
/// across restarts; freshness is decided by the engine, not the store.
pub trait Store: MaybeSendSync {
    /// Looks up each symbol; the answer has one slot per symbol, in order.
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>>;
    /// Stores the quotes, replacing older entries of the same symbols.
    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>>;
    /// Removes one symbol's entry (no error when absent).
    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>>;
    /// Removes every entry.
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// The number of entries, as best known without waiting.
    fn entry_count(&self) -> Option<usize>;
    /// Whether the store still works. A store that lost its backing (IndexedDB closed for
    /// another page's upgrade, quota exhausted) says no, and the client goes on from memory.
    fn is_available(&self) -> bool {
        true
    }
}

/// The on-disk / in-database record: a format tag and version around the quote, so a file of
/// some other program or an older layout reads as corrupt instead of as a wrong quote.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub format: String,
    pub version: u32,
    pub quote: Quote,
}

impl Record {
    pub const FORMAT: &'static str = "quantdb.quote";
    pub const VERSION: u32 = 1;

    pub fn encode(quote: &Quote) -> Result<Vec<u8>, Error> {
        #[derive(serde::Serialize)]
        struct RecordRef<'a> {
            format: &'a str,
            version: u32,
            quote: &'a Quote,
        }
        let record = RecordRef {
            format: Self::FORMAT,
            version: Self::VERSION,
            quote,
        };
        serde_json::to_vec(&record)
            .map_err(|e| Error::Storage(format!("cannot encode {}: {e}", quote.symbol)))
    }

    /// Decodes bytes stored for `symbol`; anything else is `Corrupt`.
    pub fn decode(symbol: Symbol, bytes: &[u8]) -> Stored {
        match serde_json::from_slice::<Record>(bytes) {
            Ok(r) if r.format != Self::FORMAT || r.version != Self::VERSION => {
                Stored::Corrupt(format!("format {:?} version {}", r.format, r.version))
            }
            Ok(r) if r.quote.key() != Some(symbol) => {
                Stored::Corrupt(format!("holds {} not {symbol}", r.quote.symbol))
            }
            Ok(r) => Stored::Found(r.quote),
            Err(e) => Stored::Corrupt(e.to_string()),
        }
    }
}
