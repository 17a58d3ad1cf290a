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
//! - Every event has an `id:` (`<epoch>-<sequence>`), and the first one `retry:` advice. A
//!   lone relay numbers its events itself (its epoch tells this process from another, or from
//!   its own earlier run); in a fleet ([`super::fleet`]) the fleet numbers them, the same on
//!   every relay. A client reconnecting with `Last-Event-ID` gets the events it missed while
//!   they are in the hub's recent window (the last 10,000); with an id the hub does not know
//!   (another relay's own numbering, an earlier run, too old, from before a gap) the current
//!   quotes again. A comment every 15 s keeps quiet connections open.
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

use super::fleet::{self, BusEvent, Published, PushBus};
use crate::calendar::MarketPhase;
use crate::quote::{BatchEntry, Quote};
use crate::{FetchOptions, QuantDb, Symbol, SymbolError};

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
    /// The fleet this relay pushes with (`quantdb::native::RedisStore`): one relay of the
    /// fleet polls for all. `None`: this relay polls for its own streams.
    pub fleet: Option<Arc<dyn PushBus>>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_streams: 1000,
            stream_buffer: 1024,
            poll_every: None,
            fleet: None,
        }
    }
}

/// An event id: an epoch (a relay process's, or the fleet's numbering's) and a sequence
/// number within it.
type Id = (u64, u64);

/// One event, ready to send.
#[derive(Debug, Clone)]
struct Item {
    /// `None` for the final event of a stream, which no client resumes from.
    id: Option<Id>,
    kind: &'static str,
    data: Arc<str>,
}

impl Item {
    /// The event, its id `<epoch>-<sequence>`.
    fn event(&self) -> Event {
        let event = match self.id {
            Some((epoch, seq)) => Event::default().id(format!("{epoch}-{seq}")),
            None => Event::default(),
        };
        event.event(self.kind).data(&*self.data)
    }
}

/// What a poll's answer is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// What this relay's streams were sent.
    Sent,
    /// What the fleet's events said (the polling relay of a fleet).
    Fleet,
    /// What this relay's streams were sent, the answer asked of the upstreams.
    Refreshed,
}

/// The id a client sent back in `Last-Event-ID`.
fn parse_id(id: &str) -> Option<Id> {
    let (epoch, seq) = id.trim().split_once('-')?;
    Some((epoch.parse().ok()?, seq.parse().ok()?))
}

/// A change to push: a symbol's new quote, or its new error, and its JSON.
#[derive(Debug, Clone)]
struct Change {
    symbol: Symbol,
    payload: BatchEntry,
    data: Arc<str>,
}

impl Change {
    fn new(symbol: Symbol, payload: BatchEntry) -> Change {
        let data = match &payload {
            BatchEntry::Quote(q) => json(q),
            BatchEntry::Error(e) => json(e),
        };
        Change {
            symbol,
            payload,
            data,
        }
    }

    fn kind(&self) -> &'static str {
        match self.payload {
            BatchEntry::Quote(_) => "quote",
            BatchEntry::Error(_) => "error",
        }
    }

    /// A change as the fleet sent it; `None` when it is not one.
    fn from_bus(event: BusEvent) -> Option<Change> {
        let symbol = Symbol::from_key(&event.symbol)?;
        let payload = match event.kind.as_str() {
            "quote" => BatchEntry::Quote(serde_json::from_str(&event.data).ok()?),
            "error" => BatchEntry::Error(serde_json::from_str(&event.data).ok()?),
            _ => return None,
        };
        Some(Change {
            symbol,
            payload,
            data: event.data.into(),
        })
    }

    fn to_bus(&self) -> BusEvent {
        BusEvent {
            symbol: self.symbol.key(),
            kind: self.kind().to_string(),
            data: self.data.to_string(),
        }
    }
}

/// The last quote (or error) of each symbol that was sent: what a poll's answer is compared
/// with, and what a change updates.
#[derive(Default)]
struct Seen {
    quotes: HashMap<Symbol, Quote>,
    errors: HashMap<Symbol, String>,
}

impl Seen {
    /// Whether `entry` says nothing new about `symbol`.
    fn knows(&self, symbol: Symbol, entry: &BatchEntry) -> bool {
        match entry {
            BatchEntry::Quote(q) => {
                !self.errors.contains_key(&symbol)
                    && (self.quotes.get(&symbol)).is_some_and(|b| b.same_market_data(q))
            }
            BatchEntry::Error(e) => self.errors.get(&symbol) == Some(&e.code),
        }
    }

    /// Records a change; `false` when it was known already.
    fn record(&mut self, symbol: Symbol, payload: &BatchEntry) -> bool {
        match payload {
            BatchEntry::Quote(q) => {
                let had_error = self.errors.remove(&symbol).is_some();
                let before = self.quotes.insert(symbol, q.clone());
                had_error || !before.is_some_and(|b| b.same_market_data(q))
            }
            BatchEntry::Error(e) => {
                self.errors.insert(symbol, e.code.clone()).as_ref() != Some(&e.code)
            }
        }
    }
}

struct Subscriber {
    symbols: HashSet<Symbol>,
    tx: mpsc::Sender<Item>,
    /// Fires the final event of a subscriber that fell behind.
    kill: Option<oneshot::Sender<Item>>,
}

struct State {
    next_subscriber: u64,
    subscribers: HashMap<u64, Subscriber>,
    /// How many streams want each symbol (kept with `add` and `remove`).
    wanted: HashMap<Symbol, usize>,
    /// The id of the last event sent (this relay's epoch and 0 before the first).
    last_id: Id,
    /// The last sequence number this relay gave (its own events, not the fleet's).
    local_seq: u64,
    /// The last event the fleet sent, to notice a gap.
    fleet_last: Option<Id>,
    /// The recent events, in the order they were sent, and the id just before the first.
    recent: VecDeque<(Symbol, Item)>,
    recent_after: Id,
    /// What this relay's streams were sent (pushed, or at once).
    sent: Seen,
    /// What the fleet's events said (the polling relay compares its polls with this).
    fleet: Seen,
    polling: bool,
}

impl State {
    /// The symbols of every stream.
    fn symbols(&self) -> Vec<Symbol> {
        self.wanted.keys().copied().collect()
    }

    /// Adds a stream; `true` when it brings a symbol no other stream wants.
    fn add(&mut self, id: u64, subscriber: Subscriber) -> bool {
        let mut grew = false;
        for s in &subscriber.symbols {
            let streams = self.wanted.entry(*s).or_insert(0);
            grew |= *streams == 0;
            *streams += 1;
        }
        self.subscribers.insert(id, subscriber);
        grew
    }

    /// Removes a stream.
    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let subscriber = self.subscribers.remove(&id)?;
        for s in &subscriber.symbols {
            if let Some(streams) = self.wanted.get_mut(s) {
                *streams -= 1;
                if *streams == 0 {
                    self.wanted.remove(s);
                }
            }
        }
        Some(subscriber)
    }
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
    /// Ends every stream and stops the poll (giving the fleet's poll lease up); new streams
    /// are refused.
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
        let epoch = crate::native::random_id();
        Arc::new(Hub {
            db,
            config,
            epoch,
            state: Mutex::new(State {
                next_subscriber: 0,
                subscribers: HashMap::new(),
                wanted: HashMap::new(),
                last_id: (epoch, 0),
                local_seq: 0,
                fleet_last: None,
                recent: VecDeque::new(),
                recent_after: (epoch, 0),
                sent: Seen::default(),
                fleet: Seen::default(),
                polling: false,
            }),
            closing: watch::Sender::new(false),
        })
    }

    pub(super) fn handle(self: &Arc<Self>) -> Streams {
        Streams(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fleet's bus, while it works.
    fn bus(&self) -> Option<&Arc<dyn PushBus>> {
        self.config.fleet.as_ref().filter(|bus| bus.is_available())
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
        let last_id = last_id.and_then(parse_id);
        let symbols: HashSet<Symbol> = inputs
            .iter()
            .filter_map(|s| Symbol::parse(s).ok())
            .collect();
        // Room for one change of every symbol at once (a poll's burst), plus the bound.
        let (tx, rx) = mpsc::channel(self.config.stream_buffer.max(1) + symbols.len());
        let (kill, killed) = oneshot::channel();
        let (id, replay, start_id, start_poll, grown) = {
            let mut st = self.lock();
            if st.subscribers.len() >= self.config.max_streams {
                return Err(Refused::Full);
            }
            let id = st.next_subscriber;
            st.next_subscriber += 1;
            // The missed events, when every one since `last_id` is still in the window.
            let from = last_id.and_then(|last| {
                if last == st.recent_after {
                    return Some(0);
                }
                let at = st
                    .recent
                    .iter()
                    .position(|(_, item)| item.id == Some(last))?;
                Some(at + 1)
            });
            let replay: Option<Vec<Item>> = from.map(|from| {
                (st.recent.iter().skip(from))
                    .filter(|(s, _)| symbols.contains(s))
                    .map(|(_, item)| item.clone())
                    .collect()
            });
            let grew = st.add(
                id,
                Subscriber {
                    symbols: symbols.clone(),
                    tx,
                    kill: Some(kill),
                },
            );
            let start_poll = !std::mem::replace(&mut st.polling, true);
            (
                id,
                replay,
                st.last_id,
                start_poll,
                grew.then(|| st.symbols()),
            )
        };
        // New symbols: the fleet's poll learns them now, not a window later.
        if let (Some(bus), Some(all)) = (self.bus(), grown) {
            let bus = bus.clone();
            tokio::spawn(async move {
                if let Err(e) = bus.register(&all, fleet::LEASE).await {
                    tracing::debug!("the fleet's push bus is unavailable: {e}");
                }
            });
        }
        if start_poll {
            tokio::spawn(self.clone().poll());
        }
        // The fleet's events, from the first stream on (the bus hands its receiver out once).
        if let Some(inbox) = self.config.fleet.as_ref().and_then(|bus| bus.listen()) {
            tokio::spawn(self.clone().receive(inbox));
        }
        let first: Vec<Item> = match replay {
            Some(missed) => missed,
            None => self.snapshot(&inputs, start_id).await,
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
        let events = stream::iter(first)
            .chain(live)
            .enumerate()
            .map(move |(i, item)| {
                let event = item.event();
                Ok(if i == 0 { event.retry(RETRY) } else { event })
            });
        Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
    }

    /// The current answer for each input, as events with the id of the last event.
    async fn snapshot(&self, inputs: &[String], id: Id) -> Vec<Item> {
        let entries = self.db.get_realtime_data_batch(inputs).await;
        let mut st = self.lock();
        entries
            .iter()
            .map(|entry| match entry {
                BatchEntry::Quote(q) => {
                    if let Some(s) = q.key() {
                        st.sent.quotes.entry(s).or_insert_with(|| q.clone());
                    }
                    Item {
                        id: Some(id),
                        kind: "quote",
                        data: json(q),
                    }
                }
                BatchEntry::Error(e) => Item {
                    id: Some(id),
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

    /// The shared poll: runs while any stream is open. In a fleet, only the relay holding
    /// the poll lease polls, for every relay's streams; the others' streams get its events.
    async fn poll(self: Arc<Self>) {
        let mut closing = self.closing.subscribe();
        let mut last_poll: Option<tokio::time::Instant> = None;
        loop {
            let wait = self.interval();
            // In a fleet the lease is renewed more often than a TTL window.
            let tick = match (&self.config.fleet, wait) {
                (Some(_), Some(window)) => window.min(fleet::RENEW_EVERY),
                (_, wait) => wait.unwrap_or(CLOSED_CHECK),
            };
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = closing.changed() => {}
            }
            let Some(symbols) = self.keep_polling() else {
                if let Some(bus) = &self.config.fleet {
                    bus.resign().await;
                }
                return;
            };
            let Some(window) = wait.filter(|_| !symbols.is_empty()) else {
                continue;
            };
            // (Half a tick early rather than a tick late: the timer's rounding never skips a
            // window.)
            let due = last_poll.is_none_or(|t| t.elapsed() + tick / 2 >= window);
            if let Some(bus) = self.bus() {
                match bus.register(&symbols, fleet::LEASE).await {
                    Ok(false) => continue,
                    Ok(true) => {
                        if due {
                            last_poll = Some(tokio::time::Instant::now());
                            self.poll_fleet(bus, &symbols).await;
                        }
                        continue;
                    }
                    Err(e) => tracing::debug!("the fleet's push bus is unavailable: {e}"),
                }
            }
            if due {
                last_poll = Some(tokio::time::Instant::now());
                let changes = self.poll_once(&symbols, Compare::Sent).await;
                self.deliver(changes, None);
            }
        }
    }

    /// The polling relay of a fleet: asks for every relay's symbols and publishes what
    /// changed, renewing its lease meanwhile. On a failure the changes stay unpublished: the
    /// next window publishes them, or (the bus down) every relay polls for itself.
    async fn poll_fleet(&self, bus: &Arc<dyn PushBus>, symbols: &[Symbol]) {
        let work = async {
            let wanted = bus.wanted().await?;
            let changes = self.poll_once(&wanted, Compare::Fleet).await;
            bus.publish(changes.iter().map(Change::to_bus).collect())
                .await
        };
        let mut work = std::pin::pin!(work);
        let published = loop {
            tokio::select! {
                done = &mut work => break done,
                _ = tokio::time::sleep(fleet::RENEW_EVERY) => {
                    if let Err(e) = bus.register(symbols, fleet::LEASE).await {
                        tracing::debug!("the poll lease was not renewed: {e}");
                    }
                }
            }
        };
        if let Err(e) = published {
            tracing::warn!("the fleet's push bus failed: {e}");
        }
    }

    /// The symbols of every stream of this relay; `None` (and the poll stops) once the
    /// relay closes or no stream is left.
    fn keep_polling(&self) -> Option<Vec<Symbol>> {
        let mut st = self.lock();
        if *self.closing.borrow() || st.subscribers.is_empty() {
            st.polling = false;
            return None;
        }
        Some(st.symbols())
    }

    /// Asks for `symbols` (one batch), and says what changed since what was sent here, or
    /// since the fleet's events. `refresh` asks the upstreams.
    async fn poll_once(&self, symbols: &[Symbol], compare: Compare) -> Vec<Change> {
        let keys: Vec<String> = symbols.iter().map(Symbol::key).collect();
        let options = FetchOptions {
            force_refresh: compare == Compare::Refreshed,
        };
        let entries = self.db.get_realtime_data_batch_with(&keys, options).await;
        let st = self.lock();
        let seen = if compare == Compare::Fleet {
            &st.fleet
        } else {
            &st.sent
        };
        let mut changes = Vec::new();
        for (&symbol, entry) in symbols.iter().zip(entries) {
            if !seen.knows(symbol, &entry) {
                changes.push(Change::new(symbol, entry));
            }
        }
        changes
    }

    /// Hands the fleet's events out as they arrive. After a gap (events lost on the way) the
    /// recent window is forgotten, and this relay's own symbols are asked for once more from
    /// the upstreams (its memory may be older than the lost events): what changed since its
    /// streams' last event is pushed with ids of this relay, and replaces the batch that came
    /// after the gap.
    async fn receive(self: Arc<Self>, mut inbox: mpsc::Receiver<Published>) {
        let mut closing = self.closing.subscribe();
        loop {
            let published = tokio::select! {
                p = inbox.recv() => match p {
                    Some(p) => p,
                    None => return,
                },
                _ = closing.changed() => return,
            };
            let (epoch, first) = (published.epoch, published.first);
            let count = published.events.len() as u64;
            let Some(last) = first.checked_add(count).filter(|_| count > 0) else {
                continue;
            };
            let gap = {
                let mut st = self.lock();
                let gap = (st.fleet_last)
                    .is_some_and(|(e, seq)| e != epoch || seq.checked_add(1) != Some(first));
                if gap {
                    // Only a client that had every event up to the gap resumes here (with what
                    // the catch-up below pushes); an older id gets the current quotes.
                    st.recent.clear();
                    st.recent_after = st.last_id;
                }
                st.fleet_last = Some((epoch, last - 1));
                gap
            };
            let changes: Vec<(Id, Change)> = (published.events.into_iter().zip(first..))
                .filter_map(|(e, seq)| Some(((epoch, seq), Change::from_bus(e)?)))
                .collect();
            // The relay's own answers (and the snapshots of new streams) are then as new as
            // what its streams were sent.
            let quotes: Vec<Quote> = (changes.iter())
                .filter_map(|(_, c)| match &c.payload {
                    BatchEntry::Quote(q) => Some(q.clone()),
                    BatchEntry::Error(_) => None,
                })
                .collect();
            self.db.remember_in_memory(&quotes);
            {
                let mut st = self.lock();
                for (_, change) in &changes {
                    st.fleet.record(change.symbol, &change.payload);
                }
            }
            if gap {
                let symbols = self.lock().symbols();
                let caught_up = self.poll_once(&symbols, Compare::Refreshed).await;
                self.deliver(caught_up, None);
                continue;
            }
            for (id, change) in changes {
                self.deliver(vec![change], Some(id));
            }
        }
    }

    /// Sends changes to the subscribers of their symbols: with the fleet's id `id`, or
    /// numbered here. A change the subscribers already have is not sent again (a fleet's
    /// event is still kept for those who resume).
    fn deliver(&self, changes: Vec<Change>, id: Option<Id>) {
        let mut st = self.lock();
        for change in changes {
            let symbol = change.symbol;
            let new = st.sent.record(symbol, &change.payload);
            if !new && id.is_none() {
                continue;
            }
            let id = id.unwrap_or_else(|| {
                st.local_seq += 1;
                (self.epoch, st.local_seq)
            });
            let item = Item {
                id: Some(id),
                kind: change.kind(),
                data: change.data,
            };
            st.last_id = id;
            if st.recent.len() == RECENT_EVENTS {
                if let Some((
                    _,
                    Item {
                        id: Some(oldest), ..
                    },
                )) = st.recent.pop_front()
                {
                    st.recent_after = oldest;
                }
            }
            st.recent.push_back((symbol, item.clone()));
            if !new {
                continue;
            }
            let mut behind = Vec::new();
            for (&id, sub) in st.subscribers.iter_mut() {
                if sub.symbols.contains(&symbol) && sub.tx.try_send(item.clone()).is_err() {
                    behind.push(id);
                }
            }
            for id in behind {
                if let Some(mut sub) = st.remove(id) {
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
                        // Without an id: the client resumes from the last event it read.
                        let _ = kill.send(Item {
                            id: None,
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
        self.hub.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(keys: &[&str]) -> Subscriber {
        Subscriber {
            symbols: keys.iter().map(|k| Symbol::from_key(k).unwrap()).collect(),
            tx: mpsc::channel(1).0,
            kill: None,
        }
    }

    /// The symbols the poll asks for follow the streams that come and go.
    #[test]
    fn the_wanted_symbols_follow_the_streams() {
        let mut st = State {
            next_subscriber: 0,
            subscribers: HashMap::new(),
            wanted: HashMap::new(),
            last_id: (1, 0),
            local_seq: 0,
            fleet_last: None,
            recent: VecDeque::new(),
            recent_after: (1, 0),
            sent: Seen::default(),
            fleet: Seen::default(),
            polling: false,
        };
        let keys = |st: &State| {
            let mut keys: Vec<String> = st.symbols().iter().map(Symbol::key).collect();
            keys.sort();
            keys
        };
        assert!(st.add(1, subscriber(&["sh600000", "sz000001"])));
        assert!(!st.add(2, subscriber(&["sh600000"])), "nothing new");
        assert!(st.add(3, subscriber(&["sh600000", "bj430017"])));
        assert_eq!(keys(&st), ["bj430017", "sh600000", "sz000001"]);
        assert!(st.remove(1).is_some());
        assert_eq!(keys(&st), ["bj430017", "sh600000"]);
        assert!(st.remove(1).is_none(), "removed once");
        st.remove(3);
        assert_eq!(keys(&st), ["sh600000"]);
        st.remove(2);
        assert!(st.symbols().is_empty());
    }
}
