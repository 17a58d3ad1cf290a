//! The browser's persistent tier: an IndexedDB database with two object stores.
//!
//! - `quotes`, keyed by the upstream symbol key (`sh600000`), each value the [`Record`] JSON as
//!   a string, so a value written by anything else reads as [`Stored::Corrupt`], exactly like
//!   a foreign file in the native store.
//! - `history` (from version 2), keyed `<key>/meta` and `<key>/<year>`: the records of
//!   [`SymbolHistory`], the same as the native history files. A write merges with what is
//!   stored, in one transaction, so two tabs lose nothing.
//!
//! Opening never panics and never hangs: when IndexedDB is missing, the database is newer than
//! ours or not ours, or the upgrade stays blocked, [`IdbStore::open`] returns
//! [`Error::Storage`] and the engine runs from memory. An open connection closes itself when
//! another page upgrades or deletes the database, so it never blocks a newer version of the
//! app; its later calls then fail with a storage error.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use indexed_db_futures::database::{Database, VersionChangeEvent};
use indexed_db_futures::error::{Error as IdbError, OpenDbError};
use indexed_db_futures::internals::SystemRepr;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{Transaction, TransactionMode};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::Error;
use crate::history::SymbolHistory;
use crate::platform::BoxFuture;
use crate::quote::Quote;
use crate::store::{HistoryStore, HistoryWrite, Record, Store, Stored};
use crate::symbol::Symbol;

/// Quotes in an IndexedDB database.
#[derive(Debug)]
pub struct IdbStore {
    db: Database,
    /// The object store this handle reads and writes.
    store_name: &'static str,
    name: String,
    /// The number of entries after the last open or write of this handle.
    count: Cell<usize>,
    /// Cleared when the connection closes for another page, or a write finds no room.
    available: Rc<Cell<bool>>,
    /// The connection's `versionchange` handler; unregistered when the store is dropped.
    _on_version_change: Closure<dyn FnMut()>,
}

impl IdbStore {
    /// The database version this code reads and writes (2 added the history store).
    pub const SCHEMA_VERSION: u32 = 2;
    /// The object store holding the quotes.
    pub const STORE_NAME: &'static str = "quotes";
    /// The object store holding the daily history.
    pub const HISTORY_STORE_NAME: &'static str = "history";
    /// How long [`IdbStore::open`] waits, e.g. for another tab to release an older version.
    pub const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

    /// Opens (creating or upgrading if needed) the database `name`.
    pub async fn open(name: &str) -> Result<IdbStore, Error> {
        Self::open_with_timeout(name, Self::OPEN_TIMEOUT).await
    }

    /// [`IdbStore::open`], giving up after `timeout`.
    pub async fn open_with_timeout(name: &str, timeout: Duration) -> Result<IdbStore, Error> {
        Self::open_store(name, timeout, Self::STORE_NAME).await
    }

    /// Opens the database `name` for its `store_name` object store.
    async fn open_store(
        name: &str,
        timeout: Duration,
        store_name: &'static str,
    ) -> Result<IdbStore, Error> {
        let fail = |why: String| Error::Storage(format!("IndexedDB {name:?}: cannot open: {why}"));
        let request = Database::open(name)
            .with_version(Self::SCHEMA_VERSION)
            .with_on_upgrade_needed(upgrade)
            .build()
            .map_err(|e| fail(open_reason(e)))?;
        let db = match select(request, gloo_timers::future::sleep(timeout)).await {
            Either::Left((opened, _)) => opened.map_err(|e| fail(open_reason(e)))?,
            Either::Right(((), request)) => {
                // An open request cannot be cancelled: let it finish in the background, so an
                // upgrade it starts completes, and close what it opens.
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(db) = request.await {
                        db.close();
                    }
                });
                return Err(fail(format!(
                    "no answer within {timeout:?} (another tab may hold an older version open)"
                )));
            }
        };
        for wanted in [Self::STORE_NAME, Self::HISTORY_STORE_NAME] {
            if !db.object_store_names().any(|n| n == wanted) {
                db.close();
                return Err(fail(format!(
                    "version {} has no {wanted:?} object store: not a quantdb cache",
                    Self::SCHEMA_VERSION,
                )));
            }
        }

        let closing = db.clone();
        let db_name = name.to_string();
        let available = Rc::new(Cell::new(true));
        let still_available = available.clone();
        let on_version_change = Closure::<dyn FnMut()>::new(move || {
            tracing::warn!("IndexedDB {db_name:?}: another page upgrades or deletes it, closing");
            still_available.set(false);
            closing.as_sys().close();
        });
        db.as_sys()
            .set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        let store = IdbStore {
            db,
            store_name,
            name: name.to_string(),
            count: Cell::new(0),
            available,
            _on_version_change: on_version_change,
        };
        let count = {
            let tx = store.transaction(TransactionMode::Readonly)?;
            store.count_in(&tx).await?
        };
        store.count.set(count);
        Ok(store)
    }

    /// Turns an IndexedDB failure into a storage error saying what was being done.
    fn fail(&self, what: &'static str) -> impl FnOnce(IdbError) -> Error + '_ {
        move |e| {
            let why = reason(&e);
            // Out of quota, or the connection is gone: stop using the store.
            if why.starts_with("QuotaExceededError") || why.starts_with("InvalidStateError") {
                self.available.set(false);
            }
            Error::Storage(format!("IndexedDB {:?}: cannot {what}: {why}", self.name))
        }
    }

    fn transaction(&self, mode: TransactionMode) -> Result<Transaction<'_>, Error> {
        self.db
            .transaction(self.store_name)
            .with_mode(mode)
            .build()
            .map_err(self.fail("start a transaction"))
    }

    async fn count_in(&self, tx: &Transaction<'_>) -> Result<usize, Error> {
        let store = tx
            .object_store(self.store_name)
            .map_err(self.fail("count"))?;
        let count = store.count().await.map_err(self.fail("count"))?;
        Ok(count as usize)
    }

    /// Ends a write: counts the entries as it leaves them, commits, and keeps the count.
    async fn commit(&self, tx: Transaction<'_>) -> Result<(), Error> {
        let count = self.count_in(&tx).await?;
        tx.commit().await.map_err(self.fail("commit"))?;
        self.count.set(count);
        Ok(())
    }
}

/// `Name: message` for a DOM exception (the crate's own text repeats the message of some).
fn reason(e: &IdbError) -> String {
    match e {
        IdbError::DomException(e) => format!("{}: {}", e.name(), e.message()),
        e => e.to_string(),
    }
}

fn open_reason(e: OpenDbError) -> String {
    match e {
        OpenDbError::Base(e) => reason(&e),
        e => e.to_string(),
    }
}

/// Creates the object stores that are absent and keeps those present: upgrading version 1
/// (quotes only) adds the history store and keeps every quote. Entries carry their own format
/// tag, so one that a later layout cannot read loads as corrupt, a miss, and the next save
/// overwrites it.
fn upgrade(_: VersionChangeEvent, db: Database) -> indexed_db_futures::Result<()> {
    for name in [IdbStore::STORE_NAME, IdbStore::HISTORY_STORE_NAME] {
        if !db.object_store_names().any(|n| n == name) {
            db.create_object_store(name).build()?;
        }
    }
    Ok(())
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.db.as_sys().set_onversionchange(None);
        self.db.as_sys().close();
    }
}

impl Store for IdbStore {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        Box::pin(async move {
            // Read-only: the transaction ends when dropped, nothing to commit.
            let tx = self.transaction(TransactionMode::Readonly)?;
            let store = tx
                .object_store(self.store_name)
                .map_err(self.fail("read"))?;
            // Every read goes out before the first is awaited.
            let requests = symbols
                .iter()
                .map(|s| store.get::<JsValue, _, _>(s.key()).primitive())
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.fail("read"))?;
            let mut out = Vec::with_capacity(symbols.len());
            for (&symbol, request) in symbols.iter().zip(requests) {
                out.push(match request.await.map_err(self.fail("read"))? {
                    None => Stored::Missing,
                    Some(value) => match value.as_string() {
                        Some(text) => Record::decode(symbol, text.as_bytes()),
                        None => Stored::Corrupt(format!("not a string: {value:?}")),
                    },
                });
            }
            Ok(out)
        })
    }

    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut entries = Vec::with_capacity(quotes.len());
            for q in quotes {
                let symbol = q.key().ok_or_else(|| {
                    Error::Storage(format!("quote with a bad symbol {:?}", q.symbol))
                })?;
                // JSON text is UTF-8: nothing is lost.
                let json = String::from_utf8_lossy(&Record::encode(q)?).into_owned();
                entries.push((symbol.key(), json));
            }
            let tx = self.transaction(TransactionMode::Readwrite)?;
            let store = tx
                .object_store(self.store_name)
                .map_err(self.fail("write"))?;
            let requests = entries
                .iter()
                .map(|(key, json)| {
                    store
                        .put(json.as_str())
                        .with_key(key.as_str())
                        .without_key_type()
                        .primitive()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.fail("write"))?;
            for request in requests {
                request.await.map_err(self.fail("write"))?;
            }
            self.commit(tx).await
        })
    }

    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let tx = self.transaction(TransactionMode::Readwrite)?;
            let store = tx
                .object_store(self.store_name)
                .map_err(self.fail("remove"))?;
            store
                .delete(symbol.key())
                .await
                .map_err(self.fail("remove"))?;
            self.commit(tx).await
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let tx = self.transaction(TransactionMode::Readwrite)?;
            let store = tx
                .object_store(self.store_name)
                .map_err(self.fail("clear"))?;
            store
                .clear()
                .map_err(self.fail("clear"))?
                .await
                .map_err(self.fail("clear"))?;
            self.commit(tx).await
        })
    }

    fn entry_count(&self) -> Option<usize> {
        Some(self.count.get())
    }

    fn is_available(&self) -> bool {
        self.available.get()
    }
}

/// The history store of an IndexedDB database (see the module's documentation).
#[derive(Debug)]
pub struct IdbHistory(IdbStore);

impl IdbHistory {
    /// Opens (creating or upgrading if needed) the database `name` for its history.
    pub async fn open(name: &str) -> Result<IdbHistory, Error> {
        IdbStore::open_store(name, IdbStore::OPEN_TIMEOUT, IdbStore::HISTORY_STORE_NAME)
            .await
            .map(IdbHistory)
    }
}

/// Reads one symbol's records through an open history object store.
async fn read_history(
    idb: &IdbStore,
    store: &indexed_db_futures::object_store::ObjectStore<'_>,
    symbol: Symbol,
) -> Result<Option<SymbolHistory>, Error> {
    let get = |key: String| async move {
        let value = store
            .get::<JsValue, _, _>(key)
            .primitive()
            .map_err(idb.fail("read"))?
            .await
            .map_err(idb.fail("read"))?;
        Ok::<_, Error>(value.map(|v| v.as_string()))
    };
    // A record that is not ours, or missing its years, is a miss.
    let unreadable = |why: String| {
        tracing::debug!("history of {symbol} unreadable, a miss: {why}");
        Ok(None)
    };
    let Some(meta) = get(format!("{symbol}/meta")).await? else {
        return Ok(None);
    };
    let Some(meta) = meta else {
        return unreadable("meta is not a string".into());
    };
    let (mut history, years) = match SymbolHistory::decode_meta(symbol, meta.as_bytes()) {
        Ok(decoded) => decoded,
        Err(why) => return unreadable(why),
    };
    for year in years {
        let Some(Some(text)) = get(format!("{symbol}/{year}")).await? else {
            return unreadable(format!("{year} is missing"));
        };
        if let Err(why) = history.decode_year(symbol, year, text.as_bytes()) {
            return unreadable(why);
        }
    }
    Ok(Some(history))
}

impl HistoryStore for IdbHistory {
    fn load(&self, symbol: Symbol) -> BoxFuture<'_, Result<Option<SymbolHistory>, Error>> {
        Box::pin(async move {
            let tx = self.0.transaction(TransactionMode::Readonly)?;
            let store = tx
                .object_store(IdbStore::HISTORY_STORE_NAME)
                .map_err(self.0.fail("read"))?;
            read_history(&self.0, &store, symbol).await
        })
    }

    fn save<'a>(&'a self, writes: &'a [HistoryWrite]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let idb = &self.0;
            let tx = idb.transaction(TransactionMode::Readwrite)?;
            let store = tx
                .object_store(IdbStore::HISTORY_STORE_NAME)
                .map_err(idb.fail("write"))?;
            for w in writes {
                let mut history = (*w.history).clone();
                if let Some(stored) = read_history(idb, &store, w.symbol).await? {
                    history.absorb(stored);
                }
                let have = history.years();
                let mut records: Vec<(String, Vec<u8>)> = (w.years.iter())
                    .filter(|y| have.contains(y))
                    .map(|&y| {
                        (
                            format!("{}/{y}", w.symbol),
                            history.encode_year(w.symbol, y),
                        )
                    })
                    .collect();
                records.push((format!("{}/meta", w.symbol), history.encode_meta(w.symbol)));
                for (key, bytes) in records {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    store
                        .put(text.as_str())
                        .with_key(key.as_str())
                        .without_key_type()
                        .primitive()
                        .map_err(idb.fail("write"))?
                        .await
                        .map_err(idb.fail("write"))?;
                }
            }
            idb.commit(tx).await
        })
    }

    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let idb = &self.0;
            let tx = idb.transaction(TransactionMode::Readwrite)?;
            let store = tx
                .object_store(IdbStore::HISTORY_STORE_NAME)
                .map_err(idb.fail("remove"))?;
            let years = read_history(idb, &store, symbol)
                .await?
                .map(|h| h.years())
                .unwrap_or_default();
            let keys =
                (years.iter().map(|y| format!("{symbol}/{y}"))).chain([format!("{symbol}/meta")]);
            for key in keys {
                store.delete(key).await.map_err(idb.fail("remove"))?;
            }
            idb.commit(tx).await
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let idb = &self.0;
            let tx = idb.transaction(TransactionMode::Readwrite)?;
            let store = tx
                .object_store(IdbStore::HISTORY_STORE_NAME)
                .map_err(idb.fail("clear"))?;
            store
                .clear()
                .map_err(idb.fail("clear"))?
                .await
                .map_err(idb.fail("clear"))?;
            idb.commit(tx).await
        })
    }
}
