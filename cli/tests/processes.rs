//! Processes and the file cache: `quantdb` processes killed (SIGKILL) in the middle of writing
//! the whole market, and several writing it at once into one cache directory, leave a cache a
//! new client reads without error, every entry one that was written.

use mock_upstream::{MockConfig, MockUpstream};
use quantdb::native::FileStore;
use quantdb::{Quote, Store, Stored, Symbol};

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

fn cli(mock: &MockUpstream, dir: &std::path::Path, keys: &[String]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quantdb"));
    cmd.arg("--cache-dir")
        .arg(dir)
        .args(["--providers", "sina", "quote", "--json", "--force-refresh"])
        .args(keys)
        .env("QUANTDB_SINA_URL", mock.base_url())
        .env("QUANTDB_NOW", "2026-11-30T10:00:00+08:00")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_killed_mid_write_leave_a_readable_cache() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = MockUpstream::listed_keys();
    let mut ticks = Vec::new();
    let mut torn_tails = 0;
    for round in 0..8u64 {
        mock.set_tick(round);
        ticks.push(round);
        let log = dir.path().join("quotes-v2/quotes.log");
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let before = size(&log);
        let mut child = cli(&mock, dir.path(), &keys).spawn().unwrap();
        // Kill it (SIGKILL) as soon as the log starts to grow: mid-append when lucky.
        let torn = tokio::task::spawn_blocking(move || {
            while size(&log) == before && child.try_wait().unwrap().is_none() {
                std::hint::spin_loop();
            }
            let _ = child.kill();
            child.wait().unwrap();
            !std::fs::read(&log).unwrap_or_default().ends_with(b"\n")
        })
        .await
        .unwrap();
        torn_tails += usize::from(torn);
        let store = FileStore::open(dir.path()).unwrap();
        let slots = store.load(&symbols(&keys)).await.unwrap();
        for slot in &slots {
            match slot {
                Stored::Found(q) => assert!(written_by_mock(q, &ticks), "{q:?}"),
                Stored::Missing => {}
                Stored::Corrupt(why) => panic!("a kill left a damaged entry: {why}"),
            }
        }
    }
    eprintln!("{torn_tails} of 8 kills left a torn last record");
    // A writer after all that stores the whole market, readable by a new client.
    let status = cli(&mock, dir.path(), &keys).status().unwrap();
    assert!(status.success());
    let store = FileStore::open(dir.path()).unwrap();
    let slots = store.load(&symbols(&keys)).await.unwrap();
    assert!(found(&slots)
        .iter()
        .all(|q| written_by_mock(q, &[*ticks.last().unwrap()])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_writing_the_whole_market_at_once_do_not_corrupt_the_cache() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = MockUpstream::listed_keys();
    let rounds = 4u64;
    for round in 0..rounds {
        mock.set_tick(round);
        let children: Vec<_> = (0..3)
            .map(|_| cli(&mock, dir.path(), &keys).spawn().unwrap())
            .collect();
        for mut child in children {
            let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
                .await
                .unwrap();
            assert!(status.success());
        }
    }
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.entry_count(), Some(keys.len()));
    let slots = store.load(&symbols(&keys)).await.unwrap();
    assert!(found(&slots)
        .iter()
        .all(|q| written_by_mock(q, &[rounds - 1])));
    assert_eq!(dir_names(&store), ["quotes.lock", "quotes.log"]);
    let requests = mock.requests().total as usize;
    assert_eq!(requests, 3 * rounds as usize * keys.len().div_ceil(800));
}
