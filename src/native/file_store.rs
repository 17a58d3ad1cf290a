//! The native persistent tier: an append-only log of quote records, one file per cache
//! directory, compacted when it has grown to twice what it holds.
//!
//! Layout (`<cache dir>/quotes-v2/`, the layout version in the directory name):
//!
//! - `quotes.log`: a header line `quantdb-quotes 2 <id>`, then one line per record,
//!   `<crc32> <key> <payload>`: the CRC-32 (8 hex digits) of `<key> <payload>`, the upstream
//!   key (`sh600000`), and the record ([`Record::encode_compact`]: a JSON array), or `-`
//!   when the entry was removed. The last
//!   line for a key wins. JSON never holds a raw newline, so a record is exactly one line.
//! - `quotes.lock`: taken (an OS file lock) by every writer, in this process or another, for
//!   the time of one append, compaction or clear. Readers take no lock.
//!
//! Why a log: a whole-market refresh is one `write` of every record, not one file create and
//! rename per symbol, and a fresh client reads the whole market with one open. A reader keeps
//! an index (key to offset) and only reads what was appended since its last look; compaction
//! and clear write a new file with a new id and rename it into place, and a reader that sees
//! another id reads the new file from the start.
//!
//! Promises: a reader never takes half a record (a line without its newline or with the wrong
//! checksum is not an entry: a crash mid-append leaves at most an unfinished last line, which
//! the next writer cuts off before appending); a crash loses no record already written (appends never touch
//! earlier bytes, compaction renames a complete file over the old one); processes sharing the
//! directory take turns through the lock. Nothing is fsynced: a record lost to a power cut is
//! only a miss. A damaged record, or a whole file that is not ours, reads as
//! [`Stored::Corrupt`] (a miss for the engine), and the next write repairs it. The previous
//! layout (`quotes-v1/`, a file per symbol) is ignored.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Error;
use crate::platform::BoxFuture;
use crate::quote::Quote;
use crate::store::{Record, Store, Stored};
use crate::symbol::Symbol;

/// The layout version is part of the directory name: a future layout gets a fresh directory.
const SUBDIR: &str = "quotes-v2";
const LOG: &str = "quotes.log";
const LOCK: &str = "quotes.lock";
const MAGIC: &str = "quantdb-quotes 2 ";
/// A log is compacted when it is larger than twice its live records plus this.
const COMPACT_SLACK: u64 = 256 << 10;
/// A log larger than this is not one of ours (compaction keeps a log near its live size:
/// a few MB for every listed symbol).
const MAX_LOG_BYTES: u64 = 128 << 20;
/// Above this many records a load reads the span holding them at once, not one by one.
const SPAN_READ_MIN: usize = 32;

/// Unique temporary names across the threads of this process; the pid separates processes.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A quote log in a cache directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    index: Mutex<Index>,
    /// Appends, compactions and clears done by this handle (and its clones).
    appends: AtomicU64,
    compactions: AtomicU64,
}

/// What this process knows of the log: where each key's last record is.
#[derive(Debug, Default)]
struct Index {
    /// The id in the header of the file described; `None` before any file was read.
    file_id: Option<String>,
    /// Bytes of the file read so far (a whole number of lines).
    scanned: u64,
    entries: HashMap<Symbol, Slot>,
    /// Bytes of the lines that hold live records (what a compaction keeps).
    live_bytes: u64,
    /// Set when the file is not a quote log of ours: why.
    foreign: Option<String>,
}

#[derive(Debug, Clone)]
enum Slot {
    /// The record's payload: offset and length. `line` is the whole line's length.
    At { offset: u64, len: u32, line: u32 },
    /// The last line for this key is damaged.
    Damaged(String),
}

/// Counters of the writes a store made, for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStoreStats {
    /// Appends to the log (one per `save` or `remove`).
    pub appends: u64,
    /// Times the log was rewritten to drop superseded records.
    pub compactions: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

impl FileStore {
    /// Opens (creating if needed) the store under `cache_dir`, checks it is writable, and
    /// reads the log's index.
    pub fn open(cache_dir: impl AsRef<Path>) -> Result<FileStore, Error> {
        let dir = cache_dir.as_ref().join(SUBDIR);
        let fail = |what: &str, e: std::io::Error| {
            Error::Storage(format!("cannot {what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail("create", e))?;
        let probe = temp_path(&dir, "probe");
        std::fs::write(&probe, b"").map_err(|e| fail("write to", e))?;
        let _ = std::fs::remove_file(&probe);
        let store = FileStore {
            shared: Arc::new(Shared {
                dir: dir.clone(),
                index: Mutex::new(Index::default()),
                appends: AtomicU64::new(0),
                compactions: AtomicU64::new(0),
            }),
        };
        store.refresh().map_err(|e| fail("read", e))?;
        Ok(store)
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.shared.dir.join(LOG)
    }

    /// The writes this store has made.
    pub fn stats(&self) -> FileStoreStats {
        FileStoreStats {
            appends: self.shared.appends.load(Ordering::Relaxed),
            compactions: self.shared.compactions.load(Ordering::Relaxed),
        }
    }

    /// Brings the index up to date with the file.
    fn refresh(&self) -> std::io::Result<()> {
        open_and_sync(&self.log_path(), &mut lock(&self.shared.index)).map(drop)
    }

    /// Runs `work` with the writers' lock held, the index up to date and the log open for
    /// appending (created, or replaced when foreign).
    fn write_locked<T>(
        &self,
        work: impl FnOnce(&Shared, &mut Index) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let shared = &*self.shared;
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(shared.dir.join(LOCK))?;
        lock_file.lock()?;
        // Temporary files of the log are only written under the lock: any left now was left
        // by a crash. (A probe of `open` is gone a moment after it is made; removing one
        // early does no harm.)
        remove_temp_files(&shared.dir);
        let mut index = lock(&shared.index);
        let path = shared.dir.join(LOG);
        let len = match open_and_sync(&path, &mut index)? {
            Some(file) if index.foreign.is_none() => file.metadata()?.len(),
            None if index.foreign.is_none() => {
                replace_log(&shared.dir, &mut index, &[])?;
                index.scanned
            }
            _ => {
                tracing::warn!("replacing {}", index.foreign.as_deref().unwrap_or_default());
                replace_log(&shared.dir, &mut index, &[])?;
                index.scanned
            }
        };
        if len > index.scanned {
            // A line without its newline, and no other writer running: a crash left it.
            // Readers never take it; cut it off so the next record starts clean.
            File::options()
                .write(true)
                .open(&path)?
                .set_len(index.scanned)?;
        }
        let out = work(shared, &mut index);
        drop(index);
        drop(lock_file); // releases the lock
        out
    }

    /// Appends lines to the log (under the lock), then compacts it if it has grown enough.
    fn append(&self, lines: Vec<(Symbol, Vec<u8>)>) -> std::io::Result<()> {
        self.write_locked(|shared, index| {
            let path = shared.dir.join(LOG);
            let mut buf = Vec::with_capacity(lines.iter().map(|(_, l)| l.len()).sum());
            for (_, line) in &lines {
                buf.extend_from_slice(line);
            }
            let mut file = File::options().append(true).open(&path)?;
            file.write_all(&buf)?;
            shared.appends.fetch_add(1, Ordering::Relaxed);
            let mut offset = index.scanned;
            for (symbol, line) in &lines {
                index.apply(*symbol, line, offset);
                offset += line.len() as u64;
            }
            index.scanned = offset;
            if index.scanned > 2 * index.live_bytes + COMPACT_SLACK {
                compact(shared, index)?;
            }
            Ok(())
        })
    }
}

/// Opens the log (if there is one) and reads what was appended since the index last looked,
/// or all of it when the file was replaced. Returns the open file.
fn open_and_sync(path: &Path, index: &mut Index) -> std::io::Result<Option<File>> {
    let foreign = |index: &mut Index, why: &str| {
        *index = Index {
            foreign: Some(format!("{}: {why}", path.display())),
            ..Index::default()
        };
    };
    // Only a regular file of a sane size is read: opening a FIFO would block, and a huge
    // file would be read whole.
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            *index = Index::default();
            return Ok(None);
        }
        Err(e) => return Err(e),
        Ok(m) if !m.is_file() => {
            foreign(index, "not a regular file");
            return Ok(None);
        }
        Ok(m) if m.len() > MAX_LOG_BYTES => {
            foreign(index, "too large for a quote log");
            return Ok(None);
        }
        Ok(_) => {}
    }
    let mut file = File::open(path)?;
    let mut head = [0u8; 64];
    let n = read_up_to(&mut file, &mut head)?;
    let header = match head[..n].iter().position(|&b| b == b'\n') {
        Some(end) => std::str::from_utf8(&head[..end])
            .ok()
            .and_then(|h| h.strip_prefix(MAGIC))
            .map(|id| (id.to_string(), end as u64 + 1)),
        None => None,
    };
    let Some((id, body_start)) = header else {
        foreign(index, "not a quantdb quote log");
        return Ok(Some(file));
    };
    if index.file_id.as_deref() != Some(id.as_str()) {
        *index = Index {
            file_id: Some(id),
            scanned: body_start,
            ..Index::default()
        };
    }
    file.seek(SeekFrom::Start(index.scanned))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let mut offset = index.scanned;
    let mut rest = &tail[..];
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let line = &rest[..=end];
        if let Some(symbol) = line_key(line) {
            index.apply(symbol, line, offset);
        }
        offset += line.len() as u64;
        rest = &rest[end + 1..];
    }
    index.scanned = offset; // an unfinished last line is read again next time
    Ok(Some(file))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The key of a line, if it has one that parses (damaged or not).
fn line_key(line: &[u8]) -> Option<Symbol> {
    let rest = line.get(9..)?;
    let end = memchr::memchr(b' ', rest)?;
    Symbol::from_key(std::str::from_utf8(&rest[..end]).ok()?)
}

/// One log line: checksum, key, payload (`-` for a removal), newline.
fn encode_line(symbol: Symbol, payload: &[u8]) -> Vec<u8> {
    let key = symbol.key();
    let mut body = Vec::with_capacity(key.len() + payload.len() + 12);
    body.extend_from_slice(key.as_bytes());
    body.push(b' ');
    body.extend_from_slice(payload);
    let mut line = format!("{:08x} ", crc32fast::hash(&body)).into_bytes();
    line.extend_from_slice(&body);
    line.push(b'\n');
    line
}

impl Index {
    /// Takes in one complete line found at `offset`.
    /// A damaged line (a torn append ended by the next writer, or bit rot) does not hide an
    /// earlier intact record of the same key.
    fn apply(&mut self, symbol: Symbol, line: &[u8], offset: u64) {
        let body = &line[9..line.len() - 1];
        let intact = std::str::from_utf8(&line[..8])
            .ok()
            .and_then(|crc| u32::from_str_radix(crc, 16).ok())
            .is_some_and(|crc| crc == crc32fast::hash(body));
        if !intact {
            self.entries
                .entry(symbol)
                .or_insert_with(|| Slot::Damaged("checksum mismatch".into()));
            return;
        }
        if let Some(Slot::At { line: old, .. }) = self.entries.remove(&symbol) {
            self.live_bytes -= u64::from(old);
        }
        let payload_start = symbol.key().len() + 1;
        let payload = &body[payload_start..];
        if payload != b"-" {
            let line_len = line.len() as u32;
            self.live_bytes += u64::from(line_len);
            self.entries.insert(
                symbol,
                Slot::At {
                    offset: offset + 9 + payload_start as u64,
                    len: payload.len() as u32,
                    line: line_len,
                },
            );
        }
    }

    fn live_count(&self) -> usize {
        (self.entries.values())
            .filter(|s| matches!(s, Slot::At { .. }))
            .count()
    }
}

pub(super) fn temp_path(dir: &Path, what: &str) -> PathBuf {
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{what}.{}.{seq}.tmp", std::process::id()))
}

fn remove_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A new log id: distinct across processes and time.
fn new_file_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{nanos:x}-{seq:x}", std::process::id())
}

/// Writes a new log holding `lines` to a temporary file and renames it over the log; the
/// index then describes the new file. Call with the writers' lock held.
fn replace_log(dir: &Path, index: &mut Index, lines: &[(Symbol, &[u8])]) -> std::io::Result<()> {
    let id = new_file_id();
    let mut buf = format!("{MAGIC}{id}\n").into_bytes();
    let mut fresh = Index {
        file_id: Some(id),
        ..Index::default()
    };
    for (symbol, line) in lines {
        fresh.apply(*symbol, line, buf.len() as u64);
        buf.extend_from_slice(line);
    }
    fresh.scanned = buf.len() as u64;
    let temp = temp_path(dir, "quotes");
    let written = std::fs::write(&temp, &buf).and_then(|_| std::fs::rename(&temp, dir.join(LOG)));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    *index = fresh;
    Ok(())
}

/// Rewrites the log with only its live records (under the writers' lock).
fn compact(shared: &Shared, index: &mut Index) -> std::io::Result<()> {
    let bytes = std::fs::read(shared.dir.join(LOG))?;
    let mut live: Vec<(u64, Symbol, u32)> = (index.entries.iter())
        .filter_map(|(s, slot)| match slot {
            Slot::At { offset, len, line } => Some((offset + u64::from(*len) + 1, *s, *line)),
            Slot::Damaged(_) => None,
        })
        .collect();
    live.sort_unstable_by_key(|(end, ..)| *end);
    let lines: Vec<(Symbol, &[u8])> = live
        .into_iter()
        .filter_map(|(end, s, line)| {
            let start = end.checked_sub(u64::from(line))? as usize;
            Some((s, bytes.get(start..end as usize)?))
        })
        .collect();
    replace_log(&shared.dir, index, &lines)?;
    shared.compactions.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Runs blocking file work off the async executor when a tokio runtime is there.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(work).await.map_err(storage),
        Err(_) => Ok(work()),
    }
}

impl FileStore {
    fn load_blocking(&self, symbols: &[Symbol]) -> std::io::Result<Vec<Stored>> {
        let mut index = lock(&self.shared.index);
        let file = open_and_sync(&self.log_path(), &mut index)?;
        if let Some(why) = &index.foreign {
            return Ok(vec![Stored::Corrupt(why.clone()); symbols.len()]);
        }
        let Some(mut file) = file else {
            return Ok(vec![Stored::Missing; symbols.len()]);
        };
        let mut out = vec![Stored::Missing; symbols.len()];
        let mut wanted: Vec<(usize, u64, u32)> = Vec::new();
        for (i, s) in symbols.iter().enumerate() {
            match index.entries.get(s) {
                Some(Slot::At { offset, len, .. }) => wanted.push((i, *offset, *len)),
                Some(Slot::Damaged(why)) => out[i] = Stored::Corrupt(why.clone()),
                None => {}
            }
        }
        drop(index);
        if wanted.len() >= SPAN_READ_MIN {
            let start = wanted.iter().map(|w| w.1).min().unwrap_or(0);
            let end = (wanted.iter().map(|w| w.1 + u64::from(w.2)))
                .max()
                .unwrap_or(0);
            let mut span = vec![0; (end - start) as usize];
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(&mut span)?;
            for (i, offset, len) in wanted {
                let at = (offset - start) as usize;
                out[i] = Record::decode_compact(symbols[i], &span[at..at + len as usize]);
            }
        } else {
            let mut buf = Vec::new();
            for (i, offset, len) in wanted {
                buf.resize(len as usize, 0);
                file.seek(SeekFrom::Start(offset))?;
                file.read_exact(&mut buf)?;
                out[i] = Record::decode_compact(symbols[i], &buf);
            }
        }
        Ok(out)
    }
}

impl Store for FileStore {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        let store = self.clone();
        let symbols = symbols.to_vec();
        Box::pin(async move {
            blocking(move || store.load_blocking(&symbols))
                .await?
                .map_err(storage)
        })
    }

    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut lines = Vec::with_capacity(quotes.len());
            for q in quotes {
                let symbol = q
                    .key()
                    .ok_or_else(|| storage(format!("quote with a bad symbol {:?}", q.symbol)))?;
                lines.push((symbol, encode_line(symbol, &Record::encode_compact(q)?)));
            }
            let store = self.clone();
            blocking(move || store.append(lines))
                .await?
                .map_err(|e| storage(format!("cannot write {}: {e}", self.log_path().display())))
        })
    }

    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        let store = self.clone();
        Box::pin(async move {
            blocking(move || store.append(vec![(symbol, encode_line(symbol, b"-"))]))
                .await?
                .map_err(storage)
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        let store = self.clone();
        Box::pin(async move {
            blocking(move || {
                store.write_locked(|shared, index| replace_log(&shared.dir, index, &[]))
            })
            .await?
            .map_err(storage)
        })
    }

    fn entry_count(&self) -> Option<usize> {
        Some(lock(&self.shared.index).live_count())
    }
}
