//! # quantdb
//!
//! Fast, cached, correct realtime quotes for Chinese A-shares (Shanghai, Shenzhen, Beijing),
//! for Rust programs and, through WebAssembly, browser dashboards.
//!
//! - A multi-level cache: a bounded LRU memory tier and a persistent tier (a file cache
//!   natively, IndexedDB in the browser) whose entries keep their fetch time across restarts.
//! - Trading-hours-aware TTLs on the exchange clock (UTC+8), with the exchanges' holidays.
//! - Batches ask upstream only for the missing symbols, in chunks of each provider's batch
//!   size; concurrent callers share in-flight requests; providers fall back in order.
//! - Response fields compatible with QuantDB's planned v2.2.9 (`symbol`, `current_price`,
//!   `change`, `change_percent`, `cache_hit`, `timestamp`, ...).
//!
//! ```no_run
//! # async fn demo() -> Result<(), quantdb::Error> {
//! let db = quantdb::QuantDb::builder().build().await?;
//! let quote = db.get_realtime_data("600000").await?;
//! let batch = db.get_realtime_data_batch(&["000001", "sh000001", "300750.SZ"]).await;
//! println!("{quote:?} {batch:?} {:?}", db.cache_stats());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod calendar;
mod dates;
mod engine;
pub mod error;
pub mod history;
mod platform;
pub mod provider;
pub mod quote;
pub mod stats;
pub mod store;
pub mod symbol;
pub mod transport;
pub mod upstream;
mod write_behind;

cfg_if::cfg_if! {
    if #[cfg(target_arch = "wasm32")] {
        pub mod js;
        pub mod wasm;
        use wasm as backend;
    } else {
        pub mod native;
        #[cfg(feature = "relay")]
        pub mod relay;
        use native as backend;
    }
}

pub use calendar::{MarketCalendar, MarketPhase, TtlMode, TtlPolicy};
pub use engine::{FetchOptions, HistoryEntry, QuantDb, QuantDbBuilder};
pub use error::{Error, SymbolError};
pub use history::{Adjust, Bar, HistoryRequest, Period};
pub use platform::{BoxFuture, BoxStream, MaybeSendSync};
pub use provider::Provider;
pub use quote::{BatchEntry, CacheSource, MarketStatus, Quote, RawQuote};
pub use stats::CacheStats;
pub use store::{Coordinator, HistoryStore, HistoryWrite, Store, Stored};
pub use symbol::{Exchange, Symbol};
pub use transport::{
    Clock, FixedClock, HttpRequest, HttpResponse, ShiftedClock, SystemClock, Transport,
    TransportError,
};
