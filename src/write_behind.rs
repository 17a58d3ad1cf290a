//! Writes to the persistent tier, behind the answers.
//!
//! A fetched quote is answered as soon as it is in memory; its persistent copy is queued here
//! and written by a background task, in batches (one [`Store::save`] for everything queued
//! while the previous batch was being written). The queue holds at most one quote per symbol
//! (a newer quote replaces a queued one) and at most `capacity` symbols: when it is full,
//! quotes of further symbols stay in memory only and are counted as dropped. A slow disk thus
//! costs memory bounded by the capacity, never a slower answer. [`WriteBehind::flush`] waits
//! until everything queued before it is written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::error::Error;
use crate::platform;
use crate::quote::Quote;
use crate::store::Store;
use crate::symbol::Symbol;

pub(crate) struct WriteBehind {
    store: Arc<dyn Store>,
    capacity: usize,
    state: Mutex<State>,
    /// Bumped whenever a batch ends or a drain stops: what `flush` waits on.
    progress: watch::Sender<u64>,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failures: AtomicU64,
}

/// Quotes being written, and where each symbol is among them.
type Batch = (Arc<Vec<Quote>>, HashMap<Symbol, usize>);

#[derive(Default)]
struct State {
    pending: HashMap<Symbol, Quote>,
    /// The batch being written, and where each symbol is in it.
    writing: Option<Batch>,
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

impl WriteBehind {
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> Self {
        WriteBehind {
            store,
            capacity,
            state: Mutex::default(),
            progress: watch::Sender::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Queues quotes for writing and makes sure a drain task runs. Never waits.
    pub fn enqueue(self: &Arc<Self>, quotes: Vec<Quote>) {
        if quotes.is_empty() {
            return;
        }
        let mut st = lock(&self.state);
        let mut dropped = 0;
        for q in quotes {
            let Some(s) = q.key() else { continue };
            match st.pending.get(&s) {
                Some(queued) if queued.timestamp > q.timestamp => {}
                None if st.pending.len() >= self.capacity => dropped += 1,
                _ => {
                    st.pending.insert(s, q);
                }
            }
        }
        st.queued += 1;
        let start = !st.draining;
        st.draining = true;
        drop(st);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!("persistent write queue full: {dropped} quotes kept in memory only");
        }
        if start {
            let drainer = Drainer::new(self.clone());
            platform::spawn(Box::pin(drainer.run()));
        }
    }

    /// Queued or being-written quotes for these symbols (newer than what the store holds).
    pub fn queued(&self, symbols: &[Symbol]) -> Vec<Option<Quote>> {
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
struct Drainer {
    wb: Arc<WriteBehind>,
    /// Set when it stopped on an empty queue (and already said it no longer drains).
    finished: bool,
}

impl Drainer {
    fn new(wb: Arc<WriteBehind>) -> Self {
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
                let batch: Vec<Quote> = st.pending.drain().map(|(_, q)| q).collect();
                let at = (batch.iter().enumerate())
                    .filter_map(|(i, q)| Some((q.key()?, i)))
                    .collect();
                let batch = Arc::new(batch);
                st.writing = Some((batch.clone(), at));
                (batch, st.queued)
            };
            let result = self.wb.store.save(&batch).await;
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

impl Drop for Drainer {
    fn drop(&mut self) {
        if !self.finished {
            let mut st = lock(&self.wb.state);
            if let Some((batch, _)) = st.writing.take() {
                for q in batch.iter() {
                    if let Some(s) = q.key() {
                        st.pending.entry(s).or_insert_with(|| q.clone());
                    }
                }
            }
            st.draining = false;
        }
        self.wb.progress.send_modify(|v| *v += 1);
    }
}
