//! Persistent writes happen behind the answers: a store whose writes block until the test
//! releases them shows the answers arriving first, the queue coalescing and bounded, and
//! `flush()` waiting for everything.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{builder, listed_symbols, ManualClock};
use mock_upstream::{MockConfig, MockUpstream};
use quantdb::native::FileStore;
use quantdb::{BoxFuture, CacheSource, Error, FetchOptions, Quote, Store, Stored, Symbol};
use tokio::sync::Semaphore;

/// A file store whose saves wait for a permit, and which records the size of each save and
/// counts its loads.
struct GatedStore {
    inner: FileStore,
    gate: Semaphore,
    saves: Mutex<Vec<usize>>,
    loads: Mutex<usize>,
}

impl GatedStore {
    fn new(dir: &std::path::Path) -> Arc<GatedStore> {
        Arc::new(GatedStore {
            inner: FileStore::open(dir).unwrap(),
            gate: Semaphore::new(0),
            saves: Mutex::new(Vec::new()),
            loads: Mutex::new(0),
        })
    }

    fn saves(&self) -> Vec<usize> {
        self.saves.lock().unwrap().clone()
    }
}

impl Store for GatedStore {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        *self.loads.lock().unwrap() += 1;
        self.inner.load(symbols)
    }
    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.gate.acquire().await.unwrap().forget();
            self.saves.lock().unwrap().push(quotes.len());
            self.inner.save(quotes).await
        })
    }
    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.remove(symbol)
    }
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.clear()
    }
    fn entry_count(&self) -> Option<usize> {
        self.inner.entry_count()
    }
}

/// Polls until `cond` holds (the background writer runs on another task).
async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_arrive_before_their_persistent_writes() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = GatedStore::new(dir.path());
    let db = builder(&mock, ManualClock::trading(), None)
        .persistent(true)
        .store(store.clone())
        .build()
        .await
        .unwrap();
    let symbols = listed_symbols(150);

    // Every write blocks, yet the cold batch is answered from the network.
    let first = db.get_realtime_data_batch(&symbols[..100]).await;
    assert!(first
        .iter()
        .all(|e| e.quote().unwrap().cache_source == CacheSource::Network));
    // The writer took the 100 as one batch and waits at the gate; the next 50, and a
    // refresh of 10 of the first 100, queue behind it, one entry per symbol.
    until(|| db.cache_stats().persistent_pending == 0).await;
    db.get_realtime_data_batch(&symbols[100..]).await;
    db.get_realtime_data_batch_with(&symbols[..10], FetchOptions::refresh())
        .await;
    assert_eq!(db.cache_stats().persistent_pending, 60);
    assert_eq!(store.inner.entry_count(), Some(0), "nothing written yet");
    assert!(store.saves().is_empty());

    // A flush cannot finish while the disk is stuck.
    let flushing = tokio::spawn({
        let db = db.clone();
        async move { db.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!flushing.is_finished());

    store.gate.add_permits(10);
    flushing.await.unwrap().unwrap();
    assert_eq!(
        store.saves(),
        [100, 60],
        "two batches: the first, then the rest"
    );
    let stats = db.cache_stats();
    assert_eq!(
        (stats.persistent_writes, stats.persistent_pending),
        (160, 0)
    );
    assert_eq!(stats.persistent_entries, Some(150));

    // A new client on the directory finds all 150 without a request.
    let requests = mock.requests().total;
    let fresh = builder(&mock, ManualClock::trading(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    let entries = fresh.get_realtime_data_batch(&symbols).await;
    assert!(entries
        .iter()
        .all(|e| e.quote().unwrap().cache_source == CacheSource::Disk));
    assert_eq!(mock.requests().total, requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_keeps_quotes_in_memory_and_counts_them() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = GatedStore::new(dir.path());
    let db = builder(&mock, ManualClock::trading(), None)
        .persistent(true)
        .store(store.clone())
        .write_queue_capacity(30)
        .build()
        .await
        .unwrap();
    let symbols = listed_symbols(100);
    let entries = db.get_realtime_data_batch(&symbols).await;
    assert!(entries.iter().all(|e| e.quote().is_some()));
    let stats = db.cache_stats();
    assert_eq!(stats.persistent_writes_dropped, 70);
    assert_eq!(stats.memory_entries, 100, "every quote is still in memory");
    store.gate.add_permits(10);
    db.flush().await.unwrap();
    assert_eq!(store.saves(), [30]);
    assert_eq!(db.cache_stats().persistent_entries, Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_queued_writes_and_memory_hits_read_nothing() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = GatedStore::new(dir.path());
    let db = builder(&mock, ManualClock::trading(), None)
        .persistent(true)
        .store(store.clone())
        .memory_capacity(10)
        .build()
        .await
        .unwrap();
    let symbols = listed_symbols(20);
    db.get_realtime_data_batch(&symbols[..10]).await;
    // Ten more push the first ten out of memory while their writes are still queued: they
    // come back from the queue, not from the network.
    db.get_realtime_data_batch(&symbols[10..]).await;
    let loads = *store.loads.lock().unwrap();
    let again = db.get_realtime_data_batch(&symbols[..10]).await;
    assert!(again.iter().all(|e| e.quote().unwrap().cache_hit));
    assert_eq!(mock.requests().total, 2);
    assert_eq!(
        *store.loads.lock().unwrap(),
        loads,
        "all ten were queued: the store was not read"
    );

    // Memory hits do not touch the persistent tier.
    let reads = db.cache_stats().persistent_reads;
    for _ in 0..5 {
        db.get_realtime_data_batch(&symbols[..10]).await;
    }
    assert_eq!(db.cache_stats().persistent_reads, reads);
    assert_eq!(db.cache_stats().memory_hits, 50);
    store.gate.add_permits(10);
    db.flush().await.unwrap();
}

/// Sina's wire format from the mock's market, without a socket (nor a runtime).
struct InProcessSina;

impl quantdb::Transport for InProcessSina {
    fn get<'a>(
        &'a self,
        request: &'a quantdb::HttpRequest,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<quantdb::HttpResponse, quantdb::TransportError>> {
        let keys: Vec<String> = (request.url.rsplit_once("list=").unwrap().1)
            .split(',')
            .map(String::from)
            .collect();
        let body = mock_upstream::answer_body(mock_upstream::Provider::Sina, &keys, 0);
        Box::pin(async move { Ok(quantdb::HttpResponse { status: 200, body }) })
    }
}

#[test]
fn flush_works_without_an_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let symbols = listed_symbols(50);
    assert!(tokio::runtime::Handle::try_current().is_err());
    // No tokio here: the writer runs on a thread of its own.
    futures_executor::block_on(async {
        let db = quantdb::QuantDb::builder()
            .providers([quantdb::Provider::Sina])
            .transport(Arc::new(InProcessSina))
            .clock(ManualClock::trading())
            .cache_dir(dir.path())
            .build()
            .await
            .unwrap();
        let entries = db.get_realtime_data_batch(&symbols).await;
        assert!(entries.iter().all(|e| e.quote().is_some()));
        db.flush().await.unwrap();
        assert_eq!(db.cache_stats().persistent_entries, Some(50));
        assert_eq!(db.cache_stats().persistent_writes, 50);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_that_expires_while_queued_is_fetched_again() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = GatedStore::new(dir.path());
    let clock = ManualClock::trading();
    let db = builder(&mock, clock.clone(), None)
        .persistent(true)
        .store(store.clone())
        .memory_capacity(1)
        .build()
        .await
        .unwrap();
    let symbols = listed_symbols(3);
    db.get_realtime_data_batch(&symbols).await; // written behind: stuck at the gate
    clock.advance(31); // past the 30 s TTL while the writes are still queued
    let again = db.get_realtime_data_batch(&symbols).await;
    assert!(again.iter().all(|e| e
        .quote()
        .is_some_and(|q| q.cache_source == CacheSource::Network)));
    assert_eq!(mock.requests().total, 2);
    store.gate.add_permits(10);
    db.flush().await.unwrap();
}
