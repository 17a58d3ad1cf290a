//! The browser's persistent tier: one IndexedDB object store keyed by the upstream symbol key
//! (`sh600000`), each value the [`Record`] JSON as a string, so a value written by anything
//! else reads as [`Stored::Corrupt`], exactly like a foreign file in the native store.
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
use crate::platform::BoxFuture;
use crate::quote::Quote;
use crate::store::{Record, Store, Stored};
use crate::symbol::Symbol;

/// Quotes in an IndexedDB database.
#[derive(Debug)]
pub struct IdbStore {
    db: Database,
    name: String,
    /// The number of entries after the last open or write of this handle.
    count: Cell<usize>,
    /// Cleared when the connection closes for another page, or a write finds no room.
    available: Rc<Cell<bool>>,
    /// The connection's `versionchange` handler; unregistered when the store is dropped.
    _on_version_change: Closure<dyn FnMut()>,
}

impl IdbStore {
    /// The database version this code reads and writes.
    pub const SCHEMA_VERSION: u32 = 1;
    /// The object store holding the entries.
    pub const STORE_NAME: &'static str = "quotes";
    /// How long [`IdbStore::open`] waits, e.g. for another tab to release an older version.
    pub const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

    /// Opens (creating or upgrading if needed) the database `name`.
    pub async fn open(name: &str) -> Result<IdbStore, Error> {
        Self::open_with_timeout(name, Self::OPEN_TIMEOUT).await
    }

    /// [`IdbStore::open`], giving up after `timeout`.
    pub async fn open_with_timeout(name: &str, timeout: Duration) -> Result<IdbStore, Error> {
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
        if !db.object_store_names().any(|n| n == Self::STORE_NAME) {
            db.close();
            return Err(fail(format!(
                "version {} has no {:?} object store: not a quantdb cache",
                Self::SCHEMA_VERSION,
                Self::STORE_NAME
            )));
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
            .transaction(Self::STORE_NAME)
            .with_mode(mode)
            .build()
            .map_err(self.fail("start a transaction"))
    }

    async fn count_in(&self, tx: &Transaction<'_>) -> Result<usize, Error> {
        let store = tx
            .object_store(Self::STORE_NAME)
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

/// Creates the object store if absent and keeps it if present (version 1 is the first, so
/// nothing older exists yet): entries carry their own format tag, so one that a later layout
/// cannot read loads as corrupt, a miss, and the next save overwrites it.
fn upgrade(_: VersionChangeEvent, db: Database) -> indexed_db_futures::Result<()> {
    if !db.object_store_names().any(|n| n == IdbStore::STORE_NAME) {
        db.create_object_store(IdbStore::STORE_NAME).build()?;
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
                .object_store(Self::STORE_NAME)
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
                .object_store(Self::STORE_NAME)
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
                .object_store(Self::STORE_NAME)
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
                .object_store(Self::STORE_NAME)
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
