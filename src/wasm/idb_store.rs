//! The browser's persistent tier: IndexedDB.

use crate::error::Error;
use crate::platform::BoxFuture;
use crate::quote::Quote;
use crate::store::{Store, Stored};
use crate::symbol::Symbol;

/// Quotes in an IndexedDB database.
#[derive(Debug)]
pub struct IdbStore {}

impl IdbStore {
    pub async fn open(name: &str) -> Result<IdbStore, Error> {
        Err(Error::Storage(format!("IndexedDB {name}: not available")))
    }
}

impl Store for IdbStore {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        Box::pin(async move { Ok(symbols.iter().map(|_| Stored::Missing).collect()) })
    }
    fn save<'a>(&'a self, _quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { Ok(()) })
    }
    fn remove(&self, _symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { Ok(()) })
    }
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { Ok(()) })
    }
    fn len(&self) -> Option<usize> {
        None
    }
}
