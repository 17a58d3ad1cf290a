//! The browser backend: fetch transport and IndexedDB persistence. (The JavaScript API built
//! on the engine is `crate::js`.)

mod fetch;
mod idb_store;

use std::path::Path;
use std::sync::Arc;

pub use fetch::FetchTransport;
pub use idb_store::{IdbHistory, IdbStore};

use crate::error::Error;
use crate::store::Store;
use crate::transport::Transport;

#[allow(clippy::arc_with_non_send_sync)]
pub(crate) fn default_transport() -> Result<Arc<dyn Transport>, Error> {
    Ok(Arc::new(FetchTransport))
}

// The browser is single-threaded: an `Arc` of JS handles is never shared across threads.
#[allow(clippy::arc_with_non_send_sync)]
pub(crate) async fn open_store(
    _cache_dir: Option<&Path>,
    db_name: &str,
) -> Result<Arc<dyn Store>, Error> {
    Ok(Arc::new(IdbStore::open(db_name).await?))
}

#[allow(clippy::arc_with_non_send_sync)]
pub(crate) async fn open_history_store(
    _cache_dir: Option<&Path>,
    db_name: &str,
) -> Result<Arc<dyn crate::store::HistoryStore>, Error> {
    Ok(Arc::new(IdbHistory::open(db_name).await?))
}
