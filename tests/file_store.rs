//! The native file cache: the shared store suite, corrupt and foreign files, interrupted
//! writes, and two processes sharing one directory.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;
#[path = "support/mock_upstream.rs"]
mod mock_upstream;
#[path = "support/store_suite.rs"]
mod store_suite;

use common::{builder, listed_symbols, ManualClock};
use mock_upstream::{MockConfig, MockUpstream};
use quantdb::native::FileStore;
use quantdb::{CacheSource, Store, Stored, Symbol};

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
    futures_lite_block_on(store_suite::check_store(&store));
}

/// An executor that is not tokio: the store must be usable outside a tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    assert!(tokio::runtime::Handle::try_current().is_err());
    futures_executor::block_on(f)
}

#[tokio::test]
async fn corrupt_and_foreign_files_are_misses_that_get_repaired() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let keys = [
        "sh600000", "sz000001", "sz300750", "sh601318", "sz002000", "sh600004",
    ];
    let symbols: Vec<Symbol> = keys.iter().map(|k| Symbol::from_key(k).unwrap()).collect();
    let good = serde_json::to_vec(&serde_json::json!({
        "format": "quantdb.quote", "version": 1, "quote": store_suite::sample("sz000001", 1.0, 0)
    }))
    .unwrap();
    std::fs::write(store.entry_path(symbols[0]), b"\x00\xffgarbage").unwrap();
    std::fs::write(store.entry_path(symbols[1]), b"").unwrap();
    std::fs::write(store.entry_path(symbols[2]), br#"{"some":"other program"}"#).unwrap();
    std::fs::write(store.entry_path(symbols[3]), &good).unwrap(); // holds sz000001, not sh601318
    std::fs::write(
        store.entry_path(symbols[4]),
        String::from_utf8_lossy(&good).replace("\"version\":1", "\"version\":99"),
    )
    .unwrap();
    std::fs::create_dir(store.entry_path(symbols[5])).unwrap(); // not even a file
    let slots = store.load(&symbols).await.unwrap();
    assert!(
        slots.iter().all(|s| matches!(s, Stored::Corrupt(_))),
        "{slots:?}"
    );

    // sh600004 stays a directory, so it can never be rewritten; the others are repaired.
    let db = builder(&mock, ManualClock::trading(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    let entries = db.get_realtime_data_batch(&keys).await;
    assert!(entries.iter().all(|e| e
        .quote()
        .is_some_and(|q| q.cache_source == CacheSource::Network)));
    let stats = db.cache_stats();
    assert_eq!(stats.corrupt_entries, 6);
    assert_eq!(
        stats.store_errors, 1,
        "the write over a directory fails, and is counted"
    );
    let slots = store.load(&symbols[..5]).await.unwrap();
    assert!(
        slots.iter().all(|s| matches!(s, Stored::Found(_))),
        "{slots:?}"
    );
}

#[tokio::test]
async fn an_interrupted_write_loses_nothing_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let q = store_suite::sample("sh600000", 9.05, 1_796_011_200_000);
    store.save(std::slice::from_ref(&q)).await.unwrap();
    // What a crash mid-write leaves behind: a half-written temporary file.
    let temp = store.dir().join(".sh600000.99999.0.tmp");
    std::fs::write(&temp, &b"{\"format\":\"quantdb.quote\",\"vers"[..]).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let writing = store.dir().join(".sz000001.88888.0.tmp"); // another process, mid-write
    std::fs::write(&writing, b"{").unwrap();
    let slots = store.load(&[q.key().unwrap()]).await.unwrap();
    assert_eq!(slots, vec![Stored::Found(q)]);
    assert_eq!(
        store.entry_count(),
        Some(1),
        "temporary files are not entries"
    );
    store.clear().await.unwrap();
    assert!(!temp.exists(), "clear removes leftovers of a crash");
    assert!(writing.exists(), "and leaves another writer's file alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_a_cache_dir_do_not_corrupt_it() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let symbols = listed_symbols(300);
    let run = |round: usize| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quantdb"));
        cmd.arg("--cache-dir")
            .arg(dir.path())
            .arg("quote")
            .arg("--json")
            .arg("--force-refresh")
            .args(&symbols);
        for var in [
            "QUANTDB_SINA_URL",
            "QUANTDB_TENCENT_URL",
            "QUANTDB_EASTMONEY_URL",
        ] {
            cmd.env(var, mock.base_url());
        }
        mock.set_tick(round as u64);
        cmd.stdout(std::process::Stdio::null()).spawn().unwrap()
    };
    let children: Vec<_> = (0..6).map(run).collect();
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success());
    }
    let store = FileStore::open(dir.path()).unwrap();
    let keys: Vec<Symbol> = symbols.iter().map(|s| Symbol::parse(s).unwrap()).collect();
    let slots = store.load(&keys).await.unwrap();
    assert!(slots.iter().all(|s| matches!(s, Stored::Found(_))));
    assert_eq!(store.entry_count(), Some(300));
    let leftovers = std::fs::read_dir(store.dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
    assert_eq!(mock.requests().total, 6);
}
