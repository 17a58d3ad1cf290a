//! Push over Server-Sent Events: `GET /api/v1/stream?symbols=600000,000001`, and `POST
//! /api/v1/stream` with the symbols as JSON for long lists.
//!
//! - At once, each symbol's current quote (from the cache, fetched if needed) as an
//!   `event: quote` with the quote's JSON, or its error as an `event: error`; then an
//!   `event: quote` whenever a fresh fetch changes a quote.
//! - One poll for everyone: the hub asks the engine for the union of every stream's symbols
//!   once a TTL window during sessions (the TTL in force outside them, not at all while the
//!   market is closed for the day), as one batch: one upstream request per chunk per window,
//!   however many subscribers.
//! - Every event has an `id:` (`<epoch>-<sequence>`: the epoch tells this relay process
//!   from another, or from its own earlier run), and the first one `retry:` advice. A client
//!   reconnecting with `Last-Event-ID` gets the events it missed while they are in the hub's
//!   recent window; with an id of another relay or run, or too old, the current quotes again. A comment every 15 s keeps quiet connections open.
//! - Bounds: `max_streams` streams, the relay's `max_symbols` per stream, and per subscriber
//!   `stream_buffer` events waiting beyond one change of each of its symbols: a subscriber
//!   too slow to read gets a final `event: error` (code `too_slow`) and is disconnected, and
//!   never holds the others back.
//! - When the relay stops, every stream ends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::calendar::MarketPhase;
use crate::quote::{BatchEntry, Quote};
use crate::{QuantDb, Symbol, SymbolError};

/// Events kept for clients that reconnect with `Last-Event-ID`.
const RECENT_EVENTS: usize = 10_000;
/// How often a quiet stream gets a comment.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The reconnection delay advised to clients.
const RETRY: Duration = Duration::from_secs(3);
/// While the market is closed for the day, how often the hub looks whether it opened.
const CLOSED_CHECK: Duration = Duration::from_secs(60);

/// The push settings of a relay.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The most streams open at once; more are refused with 503 `too_many_streams`.
    pub max_streams: usize,
    /// Events that may wait for one subscriber, beyond one change of each of its symbols,
    /// before it is disconnected as too slow.
    pub stream_buffer: usize,
    /// Poll this often instead of once a TTL window (tests; `None` in production).
    pub poll_every: Option<Duration>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_streams: 1000,
            stream_buffer: 1024,
            poll_every: None,
        }
    }
}

/// One event, ready to send.
#[derive(Debug, Clone)]
struct Item {
    id: u64,
    kind: &'static str,
    data: Arc<str>,
}

impl Item {
    /// The event, its id `<epoch>-<sequence>` (the epoch tells this relay process's ids from
    /// another's, or a restarted one's).
    fn event(&self, epoch: u64) -> Event {
        Event::default()
            .id(format!("{epoch}-{}", self.id))
            .event(self.kind)
            .data(&*self.data)
    }
}

/// The sequence number of an event id of this relay (`<epoch>-<sequence>`); `None` for
/// another relay's (or an older run's) id.
fn sequence_of(id: &str, epoch: u64) -> Option<u64> {
    let (e, seq) = id.trim().split_once('-')?;
    (e.parse() == Ok(epoch)).then(|| seq.parse().ok()).flatten()
}

struct Subscriber {
    symbols: HashSet<Symbol>,
    tx: mpsc::Sender<Item>,
    /// Fires the final event of a subscriber that fell behind.
    kill: Option<oneshot::Sender<Item>>,
}

#[derive(Default)]
struct State {
    next_subscriber: u64,
    subscribers: HashMap<u64, Subscriber>,
    /// The id of the last event.
    seq: u64,
    recent: VecDeque<(Symbol, Item)>,
    /// The last quote pushed (or sent at once) for each symbol.
    last_quote: HashMap<Symbol, Quote>,
    last_error: HashMap<Symbol, String>,
    polling: bool,
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The relay is shutting down.
    Closing,
    /// `max_streams` are open.
    Full,
}

/// The streams of one relay and their shared poll.
pub struct Hub {
    db: QuantDb,
    config: StreamConfig,
    /// Tells this process's event ids from those of another relay or an earlier run.
    epoch: u64,
    state: Mutex<State>,
    closing: watch::Sender<bool>,
}

/// Ends every stream of a relay (its shutdown calls this).
#[derive(Clone)]
pub struct Streams(Arc<Hub>);

impl Streams {
    /// Ends every stream and stops the poll; new streams are refused.
    pub fn close(&self) {
        self.0.closing.send_replace(true);
    }

    /// The streams open now.
    pub fn subscribers(&self) -> usize {
        self.0.lock().subscribers.len()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Arc<str> {
    serde_json::to_string(value).unwrap_or_default().into()
}

impl Hub {
    pub(super) fn new(db: QuantDb, config: StreamConfig) -> Arc<Hub> {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
            ^ u64::from(std::process::id()) << 40;
        Arc::new(Hub {
            db,
            config,
            epoch,
            state: Mutex::default(),
            closing: watch::Sender::new(false),
        })
    }

    pub(super) fn handle(self: &Arc<Self>) -> Streams {
        Streams(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream for `inputs` (checked by the caller: at least one valid symbol, within
    /// the limit), resuming after `last_id` when the events since are still known. `None`
    /// when the relay is closing or at its stream limit.
    pub(super) async fn subscribe(
        self: &Arc<Self>,
        inputs: Vec<String>,
        last_id: Option<&str>,
    ) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refused> {
        if *self.closing.borrow() {
            return Err(Refused::Closing);
        }
        let last_id = last_id.and_then(|id| sequence_of(id, self.epoch));
        let symbols: HashSet<Symbol> = inputs
            .iter()
            .filter_map(|s| Symbol::parse(s).ok())
            .collect();
        // Room for one change of every symbol at once (a poll's burst), plus the bound.
        let (tx, rx) = mpsc::channel(self.config.stream_buffer.max(1) + symbols.len());
        let (kill, killed) = oneshot::channel();
        let (id, replay, start_seq, start_poll) = {
            let mut st = self.lock();
            if st.subscribers.len() >= self.config.max_streams {
                return Err(Refused::Full);
            }
            let id = st.next_subscriber;
            st.next_subscriber += 1;
            // The missed events, when every one since `last_id` is still in the window.
            let oldest = st.recent.front().map_or(st.seq + 1, |(_, item)| item.id);
            let replay: Option<Vec<Item>> = last_id
                .filter(|&last| last <= st.seq && last + 1 >= oldest)
                .map(|last| {
                    (st.recent.iter())
                        .filter(|(s, item)| item.id > last && symbols.contains(s))
                        .map(|(_, item)| item.clone())
                        .collect()
                });
            st.subscribers.insert(
                id,
                Subscriber {
                    symbols: symbols.clone(),
                    tx,
                    kill: Some(kill),
                },
            );
            let start_poll = !std::mem::replace(&mut st.polling, true);
            (id, replay, st.seq, start_poll)
        };
        if start_poll {
            tokio::spawn(self.clone().poll());
        }
        let first: Vec<Item> = match replay {
            Some(missed) => missed,
            None => self.snapshot(&inputs, start_seq).await,
        };
        let guard = Unsubscribe {
            hub: self.clone(),
            id,
        };
        let closing = self.closing.subscribe();
        let live = stream::unfold(
            (rx, killed, closing, guard, false),
            |(mut rx, mut killed, mut closing, guard, done)| async move {
                if done || *closing.borrow() {
                    return None;
                }
                tokio::select! {
                    biased;
                    last = &mut killed => match last {
                        Ok(item) => Some((item, (rx, killed, closing, guard, true))),
                        Err(_) => None,
                    },
                    _ = closing.changed() => None,
                    item = rx.recv() => item.map(|item| (item, (rx, killed, closing, guard, false))),
                }
            },
        );
        let epoch = self.epoch;
        let events = stream::iter(first)
            .chain(live)
            .enumerate()
            .map(move |(i, item)| {
                let event = item.event(epoch);
                Ok(if i == 0 { event.retry(RETRY) } else { event })
            });
        Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
    }

    /// The current answer for each input, as events with the id of the last event.
    async fn snapshot(&self, inputs: &[String], seq: u64) -> Vec<Item> {
        let entries = self.db.get_realtime_data_batch(inputs).await;
        let mut st = self.lock();
        entries
            .iter()
            .map(|entry| match entry {
                BatchEntry::Quote(q) => {
                    if let Some(s) = q.key() {
                        st.last_quote.entry(s).or_insert_with(|| q.clone());
                    }
                    Item {
                        id: seq,
                        kind: "quote",
                        data: json(q),
                    }
                }
                BatchEntry::Error(e) => Item {
                    id: seq,
                    kind: "error",
                    data: json(e),
                },
            })
            .collect()
    }

    /// How long until the next poll; `None` while the market is closed for the day.
    fn interval(&self) -> Option<Duration> {
        if let Some(every) = self.config.poll_every {
            return Some(every);
        }
        match self.db.market_phase() {
            MarketPhase::Closed => None,
            _ => Some(self.db.ttl_now().max(Duration::from_secs(1))),
        }
    }

    /// The shared poll: runs while any stream is open.
    async fn poll(self: Arc<Self>) {
        let mut closing = self.closing.subscribe();
        loop {
            let wait = self.interval();
            tokio::select! {
                _ = tokio::time::sleep(wait.unwrap_or(CLOSED_CHECK)) => {}
                _ = closing.changed() => {}
            }
            let symbols: Vec<Symbol> = {
                let mut st = self.lock();
                if *self.closing.borrow() || st.subscribers.is_empty() {
                    st.polling = false;
                    return;
                }
                let all: HashSet<Symbol> = st
                    .subscribers
                    .values()
                    .flat_map(|s| s.symbols.iter().copied())
                    .collect();
                all.into_iter().collect()
            };
            if wait.is_none() || symbols.is_empty() {
                continue;
            }
            let keys: Vec<String> = symbols.iter().map(Symbol::key).collect();
            let entries = self.db.get_realtime_data_batch(&keys).await;
            self.publish(&symbols, &entries);
        }
    }

    /// Pushes what changed since the last poll to the subscribers of each symbol.
    fn publish(&self, symbols: &[Symbol], entries: &[BatchEntry]) {
        let mut st = self.lock();
        for (&symbol, entry) in symbols.iter().zip(entries) {
            let (kind, data) = match entry {
                BatchEntry::Quote(q) => {
                    st.last_error.remove(&symbol);
                    let before = st.last_quote.insert(symbol, q.clone());
                    if before.is_some_and(|b| b.same_market_data(q)) {
                        continue;
                    }
                    ("quote", json(q))
                }
                BatchEntry::Error(e) => {
                    if st.last_error.insert(symbol, e.code.clone()).as_ref() == Some(&e.code) {
                        continue;
                    }
                    ("error", json(e))
                }
            };
            st.seq += 1;
            let item = Item {
                id: st.seq,
                kind,
                data,
            };
            if st.recent.len() == RECENT_EVENTS {
                st.recent.pop_front();
            }
            st.recent.push_back((symbol, item.clone()));
            let mut behind = Vec::new();
            for (&id, sub) in st.subscribers.iter_mut() {
                if sub.symbols.contains(&symbol) && sub.tx.try_send(item.clone()).is_err() {
                    behind.push(id);
                }
            }
            for id in behind {
                if let Some(mut sub) = st.subscribers.remove(&id) {
                    tracing::info!(
                        "a push subscriber fell {} events behind: disconnected",
                        self.config.stream_buffer
                    );
                    let last = SymbolError {
                        symbol: String::new(),
                        input: String::new(),
                        error: format!(
                            "more than {} events waited for this stream: reconnect, and read faster",
                            self.config.stream_buffer
                        ),
                        code: "too_slow".into(),
                    };
                    if let Some(kill) = sub.kill.take() {
                        let _ = kill.send(Item {
                            id: st.seq,
                            kind: "error",
                            data: json(&last),
                        });
                    }
                }
            }
        }
    }
}

/// Removes a subscriber when its stream ends, however it ends.
struct Unsubscribe {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.hub.lock().subscribers.remove(&self.id);
    }
}
