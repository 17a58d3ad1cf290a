#![cfg(target_arch = "wasm32")]
//! The IndexedDB store against a real IndexedDB in the browser.

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use js_sys::Date;
use quantdb::store::Record;
use quantdb::wasm::{IdbHistory, IdbStore};
use quantdb::{Error, HistoryStore, Store, Stored, Symbol};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "support/browser.rs"]
mod browser;
#[path = "support/history_suite.rs"]
mod history_suite;
#[path = "support/store_suite.rs"]
mod store_suite;

/// A database name no other test (or earlier run in the same profile) uses.
fn unique(tag: &str) -> String {
    format!(
        "quantdb-test-{tag}-{}-{}",
        Date::now(),
        js_sys::Math::random()
    )
}

fn sym(key: &str) -> Symbol {
    Symbol::from_key(key).unwrap()
}

/// `future`'s output, or `None` if it takes longer than `limit`.
async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    match select(Box::pin(future), gloo_timers::future::sleep(limit)).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

fn storage_error<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Storage(why)) => why,
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn behaves_like_every_store() {
    let name = unique("suite");
    let store = IdbStore::open(&name).await.unwrap();
    store_suite::check_store(&store).await;
    let second = IdbStore::open(&name).await.unwrap();
    store_suite::check_shared(&store, &second).await;

    // A reload: a new handle counts and reads what an earlier one saved.
    let q = store_suite::sample("sh601318", 45.6, 1_796_011_200_000);
    store.save(std::slice::from_ref(&q)).await.unwrap();
    drop((store, second));
    let reopened = IdbStore::open(&name).await.unwrap();
    assert_eq!(reopened.entry_count(), Some(1));
    assert_eq!(
        reopened.load(&[sym("sh601318")]).await.unwrap(),
        vec![Stored::Found(q)]
    );
}

#[wasm_bindgen_test]
async fn foreign_values_read_as_corrupt() {
    let name = unique("corrupt");
    let store = IdbStore::open(&name).await.unwrap();
    store.clear().await.unwrap();

    let other = store_suite::sample("sz000001", 11.5, 1_796_011_200_000);
    let other_json = String::from_utf8(Record::encode(&other).unwrap()).unwrap();
    let raw = Database::open(name.as_str())
        .build()
        .unwrap()
        .await
        .unwrap();
    let tx = raw
        .transaction(IdbStore::STORE_NAME)
        .with_mode(TransactionMode::Readwrite)
        .build()
        .unwrap();
    let objects = tx.object_store(IdbStore::STORE_NAME).unwrap();
    let entries = [
        ("sh600000", JsValue::from_str("{ not json")),
        ("sh600001", JsValue::from_str(&other_json)),
        ("sh600002", JsValue::from_f64(42.0)),
        (
            "sh600003",
            JsValue::from_str(r#"{"format":"x","version":1}"#),
        ),
    ];
    for (key, value) in entries {
        objects.put(value).with_key(key).await.unwrap();
    }
    drop(objects);
    tx.commit().await.unwrap();
    raw.close();

    let got = store
        .load(&[
            sym("sh600000"),
            sym("sh600001"),
            sym("sh600002"),
            sym("sh600003"),
            sym("sh600004"),
        ])
        .await
        .unwrap();
    for slot in &got[..4] {
        assert!(matches!(slot, Stored::Corrupt(_)), "{got:?}");
    }
    assert_eq!(got[4], Stored::Missing);
    // A write recounts, foreign entries included.
    store.remove(sym("sh600003")).await.unwrap();
    assert_eq!(store.entry_count(), Some(3));
    // A save replaces a corrupt entry.
    let mine = store_suite::sample("sh600000", 9.05, 1_796_011_200_000);
    store.save(std::slice::from_ref(&mine)).await.unwrap();
    assert_eq!(
        store.load(&[sym("sh600000")]).await.unwrap(),
        vec![Stored::Found(mine)]
    );
}

#[wasm_bindgen_test]
async fn a_newer_database_is_refused_promptly() {
    let name = unique("newer");
    browser::raw_open(&name, IdbStore::SCHEMA_VERSION + 5, IdbStore::STORE_NAME)
        .await
        .close();
    let why = storage_error(IdbStore::open(&name).await);
    assert!(why.contains("VersionError"), "{why}");
}

#[wasm_bindgen_test]
async fn a_foreign_database_is_refused() {
    let name = unique("foreign");
    browser::raw_open(&name, IdbStore::SCHEMA_VERSION, "something-else")
        .await
        .close();
    let why = storage_error(IdbStore::open(&name).await);
    assert!(why.contains("not a quantdb cache"), "{why}");
}

#[wasm_bindgen_test]
async fn no_indexed_db_is_refused() {
    let result = browser::without_indexed_db(IdbStore::open(&unique("none"))).await;
    storage_error(result);
    IdbStore::open(&unique("back")).await.unwrap();
}

/// With schema version 1 an upgrade cannot be blocked (no older version exists), but an open
/// can still wait on another connection: here it queues behind a delete that a connection
/// without a `versionchange` handler blocks. The open gives up in time, and once the other
/// connection goes the abandoned request completes and the database works.
#[wasm_bindgen_test]
async fn a_blocked_open_gives_up_in_time() {
    let name = unique("blocked");
    let holder = browser::raw_open(&name, IdbStore::SCHEMA_VERSION, IdbStore::STORE_NAME).await;
    let delete = Database::delete_by_name(&name).unwrap();
    let why = storage_error(IdbStore::open_with_timeout(&name, Duration::from_millis(300)).await);
    assert!(why.contains("no answer within"), "{why}");

    holder.close();
    delete.await.unwrap();
    let store = IdbStore::open(&name).await.unwrap();
    let q = store_suite::sample("sh600000", 9.05, 1_796_011_200_000);
    store.save(std::slice::from_ref(&q)).await.unwrap();
    assert_eq!(
        store.load(&[sym("sh600000")]).await.unwrap(),
        vec![Stored::Found(q)]
    );
}

#[wasm_bindgen_test]
async fn an_open_store_yields_to_upgrades_and_deletes() {
    let q = store_suite::sample("sh600000", 9.05, 1_796_011_200_000);

    let name = unique("upgrade");
    let store = IdbStore::open(&name).await.unwrap();
    store.save(std::slice::from_ref(&q)).await.unwrap();
    let newer = within(
        Duration::from_secs(2),
        browser::raw_open(&name, IdbStore::SCHEMA_VERSION + 1, IdbStore::STORE_NAME),
    )
    .await
    .expect("the upgrade is not blocked by the open store");
    newer.close();
    storage_error(store.load(&[sym("sh600000")]).await);
    storage_error(store.save(std::slice::from_ref(&q)).await);

    let name = unique("delete");
    let store = IdbStore::open(&name).await.unwrap();
    store.save(std::slice::from_ref(&q)).await.unwrap();
    within(
        Duration::from_secs(2),
        Database::delete_by_name(&name).unwrap(),
    )
    .await
    .expect("the delete is not blocked by the open store")
    .unwrap();
    storage_error(store.load(&[sym("sh600000")]).await);
}

#[wasm_bindgen_test]
async fn the_history_store() {
    let name = unique("history");
    let a = IdbHistory::open(&name).await.unwrap();
    let b = IdbHistory::open(&name).await.unwrap();
    history_suite::check_history_store(&a, &b).await;
}

/// A database of the first version (quotes only) is upgraded: the history store is added
/// and every quote stored stays.
#[wasm_bindgen_test]
async fn the_upgrade_to_version_2_keeps_the_quotes() {
    let name = unique("v1");
    let q = store_suite::sample("sh600000", 9.05, 1_796_011_200_000);
    let v1 = browser::raw_open(&name, 1, IdbStore::STORE_NAME).await;
    let tx = v1
        .transaction(IdbStore::STORE_NAME)
        .with_mode(TransactionMode::Readwrite)
        .build()
        .unwrap();
    let text = String::from_utf8(Record::encode(&q).unwrap()).unwrap();
    let objects = tx.object_store(IdbStore::STORE_NAME).unwrap();
    objects
        .put(text.as_str())
        .with_key("sh600000")
        .without_key_type()
        .primitive()
        .unwrap()
        .await
        .unwrap();
    tx.commit().await.unwrap();
    v1.close();

    let store = IdbStore::open(&name).await.unwrap();
    assert_eq!(
        store.load(&[sym("sh600000")]).await.unwrap(),
        vec![Stored::Found(q)]
    );
    let history = IdbHistory::open(&name).await.unwrap();
    let h = history_suite::history(
        &[history_suite::bar("2024-01-02", 9.5)],
        "2024-01-01",
        "2024-01-02",
    );
    history
        .save(&[history_suite::write("sh600000", h.clone(), &[2024])])
        .await
        .unwrap();
    assert_eq!(history.load(sym("sh600000")).await.unwrap(), Some(h));
}
