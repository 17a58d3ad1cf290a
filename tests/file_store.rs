//! The native file cache: the shared store suite, its write counts, damaged and foreign logs,
//! interrupted appends. (Processes killed mid-write and processes sharing one directory are
//! in `cli/tests/processes.rs`: they run the `quantdb` binary.)
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;
#[path = "support/history_suite.rs"]
mod history_suite;
#[path = "support/store_suite.rs"]
mod store_suite;

use std::io::Write;
use std::sync::Arc;

use common::{builder, ManualClock};
use mock_upstream::{MockConfig, MockUpstream};
use quantdb::native::FileStore;
use quantdb::{CacheSource, Quote, Store, Stored, Symbol};

fn symbols(keys: &[String]) -> Vec<Symbol> {
    keys.iter().map(|k| Symbol::from_key(k).unwrap()).collect()
}

fn found(slots: &[Stored]) -> Vec<&Quote> {
    (slots.iter())
        .map(|s| match s {
            Stored::Found(q) => q,
            other => panic!("expected an entry, got {other:?}"),
        })
        .collect()
}

/// The lines of the log, header included.
fn log_lines(store: &FileStore) -> usize {
    let bytes = std::fs::read(store.log_path()).unwrap();
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn dir_names(store: &FileStore) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether `q` is what the mock answered for its symbol at one of `ticks`.
fn written_by_mock(q: &Quote, ticks: &[u64]) -> bool {
    let key = q.key().unwrap().key();
    ticks.iter().any(|&t| {
        let m = mock_upstream::market_quote_at(&key, t).unwrap();
        m.price == q.current_price && m.volume == q.volume && m.name == q.name
    })
}

#[tokio::test]
async fn file_store_passes_the_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store_suite::check_store(&store).await;
    store_suite::check_shared(&store, &FileStore::open(dir.path()).unwrap()).await;
}

#[test]
fn file_store_works_without_an_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert!(tokio::runtime::Handle::try_current().is_err());
    futures_executor::block_on(store_suite::check_store(&store));
}

#[tokio::test]
async fn a_whole_market_refresh_is_one_append_and_compaction_keeps_the_log_small() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let keys = MockUpstream::listed_keys();
    let n = keys.len();
    let db = builder(&mock, ManualClock::trading(), None)
        .persistent(true)
        .store(Arc::new(store.clone()))
        .build()
        .await
        .unwrap();
    db.get_realtime_data_batch(&keys).await;
    db.flush().await.unwrap();
    assert_eq!(store.stats().appends, 1, "one append for {n} quotes");
    assert_eq!(dir_names(&store), ["quotes.lock", "quotes.log"]);
    assert_eq!(log_lines(&store), 1 + n);
    assert_eq!(db.cache_stats().persistent_writes, n as u64);

    // Each refresh appends; the third finds the log over twice its live size and compacts.
    for round in 1..=2 {
        mock.set_tick(round);
        db.get_realtime_data_batch_with(&keys, quantdb::FetchOptions::refresh())
            .await;
        db.flush().await.unwrap();
    }
    assert_eq!(store.stats().appends, 3);
    assert_eq!(store.stats().compactions, 1);
    assert_eq!(log_lines(&store), 1 + n, "only the live records are kept");
    assert_eq!(dir_names(&store), ["quotes.lock", "quotes.log"]);

    // A fresh store reads the latest of each.
    let fresh = FileStore::open(dir.path()).unwrap();
    assert_eq!(fresh.entry_count(), Some(n));
    let slots = fresh.load(&symbols(&keys)).await.unwrap();
    assert!(found(&slots).iter().all(|q| written_by_mock(q, &[2])));
}

#[tokio::test]
async fn a_foreign_log_is_a_miss_and_gets_replaced() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    std::fs::write(store.log_path(), br#"{"some":"other program"}"#).unwrap();
    let keys = ["sh600000", "sz000001", "sz300750"];
    let slots = store.load(&symbols(&keys.map(String::from))).await.unwrap();
    assert!(
        slots.iter().all(|s| matches!(s, Stored::Corrupt(_))),
        "{slots:?}"
    );
    let db = builder(&mock, ManualClock::trading(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    let entries = db.get_realtime_data_batch(&keys).await;
    assert!(entries.iter().all(|e| e
        .quote()
        .is_some_and(|q| q.cache_source == CacheSource::Network)));
    assert_eq!(db.cache_stats().corrupt_entries, 3);
    db.flush().await.unwrap();
    let slots = store.load(&symbols(&keys.map(String::from))).await.unwrap();
    assert_eq!(found(&slots).len(), 3);
}

#[tokio::test]
async fn a_fifo_or_a_huge_file_in_place_of_the_log_is_a_miss_not_a_hang() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    for make in ["fifo", "huge"] {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        if make == "fifo" {
            let made = std::process::Command::new("mkfifo")
                .arg(store.log_path())
                .status()
                .unwrap();
            assert!(made.success());
        } else {
            let file = std::fs::File::create(store.log_path()).unwrap();
            file.set_len(300 << 20).unwrap(); // sparse: 300 MB that take no disk
        }
        let key = [Symbol::from_key("sh600000").unwrap()];
        let slots = store.load(&key).await.unwrap();
        assert!(matches!(slots[0], Stored::Corrupt(_)), "{make}: {slots:?}");
        let db = builder(&mock, ManualClock::trading(), Some(dir.path()))
            .build()
            .await
            .unwrap();
        assert!(db.get_realtime_data("600000").await.is_ok());
        db.flush().await.unwrap();
        let slots = store.load(&key).await.unwrap();
        assert!(matches!(slots[0], Stored::Found(_)), "{make}: replaced");
        assert!(std::fs::metadata(store.log_path()).unwrap().len() < 1000);
    }
}

#[tokio::test]
async fn damaged_records_are_misses_and_the_next_fetch_repairs_them() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let keys = ["sh600000", "sz000001", "sz300750", "sh601318"].map(String::from);
    let quotes: Vec<Quote> = (keys.iter().enumerate())
        .map(|(i, k)| store_suite::sample(k, 10.0 + i as f64, 1_796_011_200_000))
        .collect();
    store.save(&quotes).await.unwrap();
    // A flipped byte in sh600000's record (its checksum no longer matches), and an intact
    // line for sz000001 whose payload is another program's JSON.
    let mut bytes = std::fs::read(store.log_path()).unwrap();
    let at = bytes.windows(8).position(|w| w == b"sh600000").unwrap() + 40;
    bytes[at] ^= 0x01;
    let body = br#"sz000001 {"some":"other program"}"#;
    bytes.extend_from_slice(format!("{:08x} ", crc32fast::hash(body)).as_bytes());
    bytes.extend_from_slice(body);
    bytes.push(b'\n');
    std::fs::write(store.log_path(), &bytes).unwrap();

    let reader = FileStore::open(dir.path()).unwrap();
    let slots = reader.load(&symbols(&keys)).await.unwrap();
    assert!(matches!(slots[0], Stored::Corrupt(_)), "{:?}", slots[0]);
    assert!(matches!(slots[1], Stored::Corrupt(_)), "{:?}", slots[1]);
    assert_eq!(slots[2], Stored::Found(quotes[2].clone()));
    assert_eq!(slots[3], Stored::Found(quotes[3].clone()));

    let db = builder(&mock, ManualClock::trading(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    db.get_realtime_data_batch(&keys[..2]).await;
    assert_eq!(db.cache_stats().corrupt_entries, 2);
    db.flush().await.unwrap();
    let slots = reader.load(&symbols(&keys)).await.unwrap();
    let repaired = found(&slots);
    assert!(written_by_mock(repaired[0], &[0]) && written_by_mock(repaired[1], &[0]));
    assert_eq!(repaired[2], &quotes[2]);
}

#[tokio::test]
async fn an_interrupted_append_loses_nothing_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let q1 = store_suite::sample("sh600000", 9.05, 1_796_011_200_000);
    store.save(std::slice::from_ref(&q1)).await.unwrap();
    // What a crash mid-append leaves: the start of a line, no newline; and a temporary file
    // of an interrupted compaction.
    let mut log = std::fs::File::options()
        .append(true)
        .open(store.log_path())
        .unwrap();
    log.write_all(b"1234abcd sz000001 {\"format\":\"quantdb.quote\",\"vers")
        .unwrap();
    drop(log);
    std::fs::write(store.dir().join(".quotes.99999.0.tmp"), b"half").unwrap();
    std::fs::write(store.dir().join(".probe.99999.1.tmp"), b"").unwrap();

    let reader = FileStore::open(dir.path()).unwrap();
    let (a, b) = (q1.key().unwrap(), Symbol::from_key("sz000001").unwrap());
    assert_eq!(
        reader.load(&[a, b]).await.unwrap(),
        vec![Stored::Found(q1.clone()), Stored::Missing]
    );
    assert_eq!(reader.entry_count(), Some(1));

    // The next writer cuts the torn line off and appends whole records.
    let q2 = store_suite::sample("sz000001", 11.5, 1_796_011_201_000);
    reader.save(std::slice::from_ref(&q2)).await.unwrap();
    let fresh = FileStore::open(dir.path()).unwrap();
    assert_eq!(
        fresh.load(&[a, b]).await.unwrap(),
        vec![Stored::Found(q1), Stored::Found(q2)]
    );
    assert_eq!(fresh.entry_count(), Some(2));
    assert_eq!(dir_names(&fresh), ["quotes.lock", "quotes.log"]);
}

#[tokio::test]
async fn the_history_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = quantdb::native::HistoryFiles::open(dir.path()).unwrap();
    let b = quantdb::native::HistoryFiles::open(dir.path()).unwrap();
    history_suite::check_history_store(&a, &b).await;
}

/// A damaged or foreign file makes the symbol's history a miss, and the next write repairs
/// it; a year file the meta names but that is gone is a miss too.
#[tokio::test]
async fn damaged_history_files_are_a_miss() {
    use quantdb::HistoryStore;
    let dir = tempfile::tempdir().unwrap();
    let files = quantdb::native::HistoryFiles::open(dir.path()).unwrap();
    let sh = Symbol::from_key("sh600000").unwrap();
    let h = history_suite::history(
        &[history_suite::bar("2024-01-02", 9.5)],
        "2024-01-01",
        "2024-01-02",
    );
    files
        .save(&[history_suite::write("sh600000", h.clone(), &[2024])])
        .await
        .unwrap();
    let symbol_dir = files.dir().join("sh600000");
    let mut names: Vec<String> = (std::fs::read_dir(&symbol_dir).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["2024.json", "meta.json"],
        "one file a year, and the meta file"
    );
    for (file, damage) in [
        ("2024.json", &b"{\"format\":"[..]),
        ("meta.json", b"not json"),
    ] {
        std::fs::write(symbol_dir.join(file), damage).unwrap();
        assert_eq!(files.load(sh).await.unwrap(), None, "{file}");
        files
            .save(&[history_suite::write("sh600000", h.clone(), &[2024])])
            .await
            .unwrap();
        assert_eq!(
            files.load(sh).await.unwrap(),
            Some(h.clone()),
            "{file} repaired"
        );
    }
    std::fs::remove_file(symbol_dir.join("2024.json")).unwrap();
    assert_eq!(
        files.load(sh).await.unwrap(),
        None,
        "a named year is missing"
    );
}
