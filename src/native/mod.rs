//! The native backend: reqwest transport and the file cache. (The relay server built on the
//! engine is `crate::relay`, feature `relay`.)

mod file_store;
mod history_files;
mod http;
mod push;
#[cfg(feature = "redis")]
mod redis_store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use file_store::FileStore;
pub use history_files::HistoryFiles;
pub use http::ReqwestTransport;
pub(crate) use push::relay_stream;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;

use crate::error::Error;
use crate::store::{HistoryStore, Store};
use crate::transport::Transport;

/// A random number of 53 bits (exact in JavaScript too): the epoch of a relay's event ids,
/// a fleet's, a client's name on its leases.
#[cfg(any(feature = "relay", feature = "redis"))]
pub(crate) fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    random.write_u128(now.map_or(0, |d| d.as_nanos()));
    random.write_u32(std::process::id());
    random.finish() >> 11
}

/// The default cache directory: the platform cache directory plus `quantdb`
/// (`~/.cache/quantdb` on Linux).
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("quantdb"))
}

pub(crate) fn default_transport() -> Result<Arc<dyn Transport>, Error> {
    Ok(Arc::new(ReqwestTransport::new()?))
}

/// The cache directory asked for, or the default one.
fn cache_root(cache_dir: Option<&Path>) -> Result<PathBuf, Error> {
    match cache_dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => default_cache_dir()
            .ok_or_else(|| Error::Storage("no cache directory on this platform".into())),
    }
}

pub(crate) async fn open_store(
    cache_dir: Option<&Path>,
    _db_name: &str,
) -> Result<Arc<dyn Store>, Error> {
    Ok(Arc::new(FileStore::open(cache_root(cache_dir)?)?))
}

pub(crate) async fn open_history_store(
    cache_dir: Option<&Path>,
    _db_name: &str,
) -> Result<Arc<dyn HistoryStore>, Error> {
    Ok(Arc::new(HistoryFiles::open(cache_root(cache_dir)?)?))
}
