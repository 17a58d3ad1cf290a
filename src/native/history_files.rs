//! The native history tier: a directory per symbol under `<cache dir>/history-v1/`, holding
//! `meta.json` (covered ranges, factor table, the years that have bars) and one `<year>.json`
//! of bars per calendar year (see [`SymbolHistory`]). Adding a day rewrites that year's file
//! and the meta file, never ten years of bars.
//!
//! Every file is written to a temporary name and renamed into place. Writers (in this
//! process or another) take `history.lock` in turn and merge what they write with what is on
//! disk, bar by bar and range by range, so two processes sharing the directory lose nothing;
//! year files are written before the meta file that names them, so a reader that sees a
//! range covered also sees its bars. Readers take no lock. A file that is not ours, damaged
//! or inconsistent makes the symbol's history a miss (fetched again and rewritten).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use super::file_store::{blocking, temp_path};
use crate::error::Error;
use crate::history::SymbolHistory;
use crate::platform::BoxFuture;
use crate::store::{HistoryStore, HistoryWrite};
use crate::symbol::Symbol;

const SUBDIR: &str = "history-v1";
const LOCK: &str = "history.lock";
const META: &str = "meta.json";
/// No record of ours is larger: a year is about 250 bars of under 200 bytes.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// Daily history files in a cache directory.
#[derive(Debug, Clone)]
pub struct HistoryFiles {
    dir: PathBuf,
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

impl HistoryFiles {
    /// Opens (creating if needed) `<cache_dir>/history-v1`.
    pub fn open(cache_dir: impl AsRef<Path>) -> Result<HistoryFiles, Error> {
        let dir = cache_dir.as_ref().join(SUBDIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| storage(format!("cannot create {}: {e}", dir.display())))?;
        Ok(HistoryFiles { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn symbol_dir(&self, symbol: Symbol) -> PathBuf {
        self.dir.join(symbol.key())
    }

    /// The symbol's history, `None` when absent or unreadable.
    fn load_blocking(&self, symbol: Symbol) -> Option<SymbolHistory> {
        let dir = self.symbol_dir(symbol);
        let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
            match read_small(&dir.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{name}: {e}")),
            }
        };
        let load = || -> Result<Option<SymbolHistory>, String> {
            let Some(meta) = read(META)? else {
                return Ok(None);
            };
            let (mut history, years) = SymbolHistory::decode_meta(symbol, &meta)?;
            for year in years {
                let bytes = read(&format!("{year}.json"))?
                    .ok_or_else(|| format!("{year}.json is missing"))?;
                history.decode_year(symbol, year, &bytes)?;
            }
            Ok(Some(history))
        };
        load()
            .inspect_err(|why| tracing::debug!("history of {symbol} unreadable, a miss: {why}"))
            .ok()
            .flatten()
    }

    /// Runs `work` with the writers' lock held.
    fn locked<T>(&self, work: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK))?;
        lock.lock()?;
        let result = work();
        drop(lock);
        result
    }

    fn save_blocking(&self, writes: &[HistoryWrite]) -> std::io::Result<()> {
        self.locked(|| {
            for w in writes {
                let mut history = (*w.history).clone();
                if let Some(on_disk) = self.load_blocking(w.symbol) {
                    history.absorb(on_disk);
                }
                let dir = self.symbol_dir(w.symbol);
                std::fs::create_dir_all(&dir)?;
                let have = history.years();
                for &year in w.years.iter().filter(|y| have.contains(y)) {
                    write_atomic(
                        &dir,
                        &format!("{year}.json"),
                        &history.encode_year(w.symbol, year),
                    )?;
                }
                // Years on disk that our copy did not know are in the merged copy too: a
                // meta file only names years whose files exist.
                for year in &have {
                    if !dir.join(format!("{year}.json")).exists() {
                        write_atomic(
                            &dir,
                            &format!("{year}.json"),
                            &history.encode_year(w.symbol, *year),
                        )?;
                    }
                }
                write_atomic(&dir, META, &history.encode_meta(w.symbol))?;
            }
            Ok(())
        })
    }

    fn remove_blocking(&self, symbol: Option<Symbol>) -> std::io::Result<()> {
        self.locked(|| {
            let dirs: Vec<PathBuf> = match symbol {
                Some(s) => vec![self.symbol_dir(s)],
                None => (std::fs::read_dir(&self.dir)?.flatten())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect(),
            };
            for dir in dirs {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })
    }
}

/// A regular file of at most [`MAX_FILE_BYTES`] (a FIFO or a huge file is not ours).
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "not a history file of ours",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    File::open(path)?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = temp_path(dir, name);
    std::fs::write(&temp, bytes)
        .and_then(|()| std::fs::rename(&temp, dir.join(name)))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
}

impl HistoryStore for HistoryFiles {
    fn load(&self, symbol: Symbol) -> BoxFuture<'_, Result<Option<SymbolHistory>, Error>> {
        let files = self.clone();
        Box::pin(async move { blocking(move || files.load_blocking(symbol)).await })
    }

    fn save<'a>(&'a self, writes: &'a [HistoryWrite]) -> BoxFuture<'a, Result<(), Error>> {
        let files = self.clone();
        let writes = writes.to_vec();
        Box::pin(async move {
            blocking(move || files.save_blocking(&writes))
                .await?
                .map_err(|e| {
                    storage(format!(
                        "cannot write history in {}: {e}",
                        self.dir.display()
                    ))
                })
        })
    }

    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        let files = self.clone();
        Box::pin(async move {
            blocking(move || files.remove_blocking(Some(symbol)))
                .await?
                .map_err(storage)
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        let files = self.clone();
        Box::pin(async move {
            blocking(move || files.remove_blocking(None))
                .await?
                .map_err(storage)
        })
    }
}
