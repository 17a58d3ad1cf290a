//! The native persistent tier: one small JSON file per symbol in a cache directory.
//!
//! Each write goes to a uniquely named temporary file that is then renamed over the entry,
//! so a reader (in this process or another sharing the directory) sees the old entry or the
//! new one, never half of one, and a crash mid-write loses nothing already stored. The last
//! writer wins. Files are not fsynced: a cache entry lost to a power cut is only a miss.
//! Anything unreadable reads as [`Stored::Corrupt`], which the engine treats as a miss.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::platform::BoxFuture;
use crate::quote::Quote;
use crate::store::{Record, Store, Stored};
use crate::symbol::Symbol;

/// The layout version is part of the directory name: a future layout gets a fresh directory.
const SUBDIR: &str = "quotes-v1";

/// Unique temporary names across the threads of this process; the pid separates processes.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A directory of quote files.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: Arc<PathBuf>,
}

impl FileStore {
    /// Opens (creating if needed) the store under `cache_dir`, and checks it is writable.
    pub fn open(cache_dir: impl AsRef<Path>) -> Result<FileStore, Error> {
        let dir = cache_dir.as_ref().join(SUBDIR);
        let fail = |what: &str, e: std::io::Error| {
            Error::Storage(format!("cannot {what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail("create", e))?;
        let probe = temp_path(&dir, "probe");
        std::fs::write(&probe, b"").map_err(|e| fail("write to", e))?;
        let _ = std::fs::remove_file(&probe);
        Ok(FileStore { dir: Arc::new(dir) })
    }

    /// The directory holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one symbol's entry.
    pub fn entry_path(&self, symbol: Symbol) -> PathBuf {
        self.dir.join(format!("{}.json", symbol.key()))
    }
}

fn temp_path(dir: &Path, key: &str) -> PathBuf {
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{key}.{}.{seq}.tmp", std::process::id()))
}

fn write_atomically(dir: &Path, key: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = temp_path(dir, key);
    let result = std::fs::write(&temp, bytes)
        .and_then(|_| std::fs::rename(&temp, dir.join(format!("{key}.json"))));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// A temporary file old enough that no writer is still working on it (a crash left it).
/// Younger ones may belong to another process writing right now: leave them be.
fn abandoned(entry: &std::fs::DirEntry) -> bool {
    let age = entry
        .metadata()
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default());
    age.is_ok_and(|age| age > std::time::Duration::from_secs(60))
}

/// Runs blocking file work off the async executor when a tokio runtime is there.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(work).await.map_err(storage),
        Err(_) => Ok(work()),
    }
}

impl Store for FileStore {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        let store = self.clone();
        let symbols = symbols.to_vec();
        Box::pin(blocking(move || {
            symbols
                .into_iter()
                .map(|s| match std::fs::read(store.entry_path(s)) {
                    Ok(bytes) => Record::decode(s, &bytes),
                    Err(e) if e.kind() == ErrorKind::NotFound => Stored::Missing,
                    Err(e) => Stored::Corrupt(e.to_string()),
                })
                .collect()
        }))
    }

    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut files = Vec::with_capacity(quotes.len());
            for q in quotes {
                let key = q
                    .key()
                    .ok_or_else(|| storage(format!("quote with a bad symbol {:?}", q.symbol)))?
                    .key();
                files.push((key, Record::encode(q)?));
            }
            let dir = self.dir.clone();
            blocking(move || {
                // Write every entry even if one fails; report the first failure.
                let mut first_error = None;
                for (key, bytes) in &files {
                    if let Err(e) = write_atomically(&dir, key, bytes) {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            })
            .await?
            .map_err(storage)
        })
    }

    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        let path = self.entry_path(symbol);
        Box::pin(async move {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(storage(e)),
                _ => Ok(()),
            }
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        let dir = self.dir.clone();
        Box::pin(async move {
            blocking(move || {
                for entry in std::fs::read_dir(&*dir)?.flatten() {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.ends_with(".json") || (name.ends_with(".tmp") && abandoned(&entry)) {
                        match std::fs::remove_file(entry.path()) {
                            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                            _ => {}
                        }
                    }
                }
                Ok(())
            })
            .await?
            .map_err(storage)
        })
    }

    fn entry_count(&self) -> Option<usize> {
        let entries = std::fs::read_dir(&*self.dir).ok()?;
        Some(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count(),
        )
    }
}
