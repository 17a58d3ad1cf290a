//! Writes to the persistent tier, behind the answers.
//!
//! A fetched quote is answered as soon as it is in memory; its persistent copy is queued here
//! and written by a background task, in batches (one [`Store::save`] for everything queued
//! while the previous batch was being written). The queue holds at most one quote per symbol
//! (a newer quote replaces a queued one) and at most `capacity` symbols: when it is full,
//! quotes of further symbols stay in memory only and are counted as dropped. A slow disk thus
//! costs memory bounded by the capacity, never a slower answer. [`WriteBehind::flush`] waits
//! until everything queued before it is written.

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::error::Error;
use crate::platform::{self, BoxFuture, MaybeSendSync};
use crate::quote::Quote;
use crate::store::{HistoryStore, HistoryWrite, Store};
use crate::symbol::Symbol;

/// What the queue holds: at most one item per symbol.
pub(crate) trait Item: Clone + MaybeSendSync + 'static {
    /// The symbol it is for (`None`: not stored).
    fn symbol(&self) -> Option<Symbol>;
    /// `self` is queued and `newer` arrives for the same symbol: what stays queued.
    fn absorb(&mut self, newer: Self);
}

/// Where the queued items are written, a batch at a time.
pub(crate) trait Sink<T>: MaybeSendSync {
    /// Writes one batch.
    fn write<'a>(&'a self, batch: &'a [T]) -> BoxFuture<'a, Result<(), Error>>;
}

impl Item for Quote {
    fn symbol(&self) -> Option<Symbol> {
        self.key()
    }

    /// The newer fetch wins.
    fn absorb(&mut self, newer: Quote) {
        if newer.timestamp >= self.timestamp {
            *self = newer;
        }
    }
}

impl Item for HistoryWrite {
    fn symbol(&self) -> Option<Symbol> {
        Some(self.symbol)
    }

    /// The newer state, and the years of both.
    fn absorb(&mut self, newer: HistoryWrite) {
        self.history = newer.history;
        self.years.extend(newer.years);
    }
}

impl Sink<HistoryWrite> for dyn HistoryStore {
    fn write<'a>(&'a self, batch: &'a [HistoryWrite]) -> BoxFuture<'a, Result<(), Error>> {
        self.save(batch)
    }
}

impl Sink<Quote> for dyn Store {
    fn write<'a>(&'a self, batch: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        self.save(batch)
    }
}

pub(crate) struct WriteBehind<T, S: ?Sized = dyn Store> {
    store: Arc<S>,
    capacity: usize,
    state: Mutex<State<T>>,
    /// Bumped whenever a batch ends or a drain stops: what `flush` waits on.
    progress: watch::Sender<u64>,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failures: AtomicU64,
}

/// Quotes being written, and where each symbol is among them.
type Batch<T> = (Arc<Vec<T>>, HashMap<Symbol, usize>);

struct State<T> {
    pending: HashMap<Symbol, T>,
    /// The batch being written, and where each symbol is in it.
    writing: Option<Batch<T>>,
    /// Enqueue calls so far.
    queued: u64,
    /// Every enqueue up to this one has been written (or has failed).
    done: u64,
    /// A drain task is running.
    draining: bool,
    /// The first write failure not yet reported by a flush.
    failure: Option<Error>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Item, S: Sink<T> + ?Sized + 'static> WriteBehind<T, S> {
    pub fn new(store: Arc<S>, capacity: usize) -> Self {
        WriteBehind {
            store,
            capacity,
            state: Mutex::new(State {
                pending: HashMap::new(),
                writing: None,
                queued: 0,
                done: 0,
                draining: false,
                failure: None,
            }),
            progress: watch::Sender::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Queues items for writing and makes sure a drain task runs. Never waits.
    pub fn enqueue(self: &Arc<Self>, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        let mut st = lock(&self.state);
        let mut dropped = 0;
        for item in items {
            let Some(s) = item.symbol() else { continue };
            let full = st.pending.len() >= self.capacity;
            match st.pending.get_mut(&s) {
                Some(queued) => queued.absorb(item),
                None if full => dropped += 1,
                None => {
                    st.pending.insert(s, item);
                }
            }
        }
        st.queued += 1;
        let start = !st.draining;
        st.draining = true;
        drop(st);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!("persistent write queue full: {dropped} entries kept in memory only");
        }
        if start {
            let drainer = Drainer::new(self.clone());
            platform::spawn(Box::pin(drainer.run()));
        }
    }

    /// Queued or being-written quotes for these symbols (newer than what the store holds).
    pub fn queued(&self, symbols: &[Symbol]) -> Vec<Option<T>> {
        let st = lock(&self.state);
        if st.pending.is_empty() && st.writing.is_none() {
            return vec![None; symbols.len()];
        }
        let writing = |s: &Symbol| {
            let (batch, at) = st.writing.as_ref()?;
            batch.get(*at.get(s)?).cloned()
        };
        (symbols.iter())
            .map(|s| st.pending.get(s).cloned().or_else(|| writing(s)))
            .collect()
    }

    /// Quotes waiting to be written.
    pub fn pending(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Forgets queued writes: of these symbols, or all.
    pub fn discard(&self, symbols: Option<&[Symbol]>) {
        let mut st = lock(&self.state);
        match symbols {
            Some(symbols) => symbols.iter().for_each(|s| {
                st.pending.remove(s);
            }),
            None => st.pending.clear(),
        }
    }

    /// Waits until everything queued so far is written; reports a write that failed since
    /// the last flush. Drives the writing itself when no task does (no runtime to spawn on).
    pub async fn flush(self: &Arc<Self>) -> Result<(), Error> {
        let mut progress = self.progress.subscribe();
        let target = lock(&self.state).queued;
        loop {
            let drive = {
                let mut st = lock(&self.state);
                let idle = st.pending.is_empty() && !st.draining;
                if st.done >= target || idle {
                    return st.failure.take().map_or(Ok(()), Err);
                }
                !std::mem::replace(&mut st.draining, true)
            };
            if drive {
                Drainer::new(self.clone()).run().await;
            } else {
                // The sender lives in `self`: this cannot fail while we hold it.
                let _ = progress.changed().await;
            }
        }
    }
}

/// The task that writes batches until the queue is empty. Dropped early (its runtime shut
/// down), it puts its unwritten batch back and lets the next enqueue or flush start another.
struct Drainer<T: Item, S: Sink<T> + ?Sized + 'static> {
    wb: Arc<WriteBehind<T, S>>,
    /// Set when it stopped on an empty queue (and already said it no longer drains).
    finished: bool,
}

impl<T: Item, S: Sink<T> + ?Sized + 'static> Drainer<T, S> {
    fn new(wb: Arc<WriteBehind<T, S>>) -> Self {
        Drainer {
            wb,
            finished: false,
        }
    }

    async fn run(mut self) {
        loop {
            let (batch, upto) = {
                let mut st = lock(&self.wb.state);
                if st.pending.is_empty() {
                    // Under the same lock as the check, so an enqueue now starts a new drain.
                    st.draining = false;
                    self.finished = true;
                    return;
                }
                let batch: Vec<T> = st.pending.drain().map(|(_, q)| q).collect();
                let at = (batch.iter().enumerate())
                    .filter_map(|(i, q)| Some((q.symbol()?, i)))
                    .collect();
                let batch = Arc::new(batch);
                st.writing = Some((batch.clone(), at));
                (batch, st.queued)
            };
            let result = self.wb.store.write(&batch).await;
            let n = batch.len() as u64;
            let mut st = lock(&self.wb.state);
            st.writing = None;
            st.done = upto;
            match result {
                Ok(()) => {
                    self.wb.written.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    self.wb.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("persistent cache write failed: {e}");
                    st.failure.get_or_insert(e);
                }
            }
            drop(st);
            self.wb.progress.send_modify(|v| *v += 1);
        }
    }
}

impl<T: Item, S: Sink<T> + ?Sized + 'static> Drop for Drainer<T, S> {
    fn drop(&mut self) {
        if !self.finished {
            let mut st = lock(&self.wb.state);
            if let Some((batch, _)) = st.writing.take() {
                for q in batch.iter() {
                    let Some(s) = q.symbol() else { continue };
                    // Back in the queue, under anything newer queued since.
                    let mut item = q.clone();
                    if let Some(newer) = st.pending.remove(&s) {
                        item.absorb(newer);
                    }
                    st.pending.insert(s, item);
                }
            }
            st.draining = false;
        }
        self.wb.progress.send_modify(|v| *v += 1);
    }
}
