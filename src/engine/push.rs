//! Live quotes for a client ([`QuantDb::subscribe`]): asked once a TTL window, or pushed by a
//! relay; and quotes pushed by a relay kept in the client's own tiers.

use foldhash::{HashMap, HashMapExt};
use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream;

use super::{lock, QuantDb};
use crate::platform::{self, BoxStream};
use crate::quote::{BatchEntry, Quote};
use crate::upstream::Provider;

/// The shortest wait between two polls.
const MIN_POLL: Duration = Duration::from_secs(1);

impl QuantDb {
    /// Live quotes for `symbols`: each one's current answer at once (a quote, or its error),
    /// then an entry whenever it changes. When the first provider is a relay (natively) they
    /// come over its push stream, which reconnects and resumes by itself; otherwise the
    /// symbols are asked once a TTL window as one batch (one request a chunk). The stream
    /// never ends by itself: drop it to stop. Natively it needs tokio's timer (as
    /// `#[tokio::main]` has).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), quantdb::Error> {
    /// use futures_util::StreamExt;
    /// let db = quantdb::QuantDb::builder().build().await?;
    /// let mut live = db.subscribe(&["600000", "000001"]);
    /// while let Some(entry) = live.next().await {
    ///     if let Some(q) = entry.quote() {
    ///         println!("{} {}", q.symbol, q.current_price);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe<S: AsRef<str>>(&self, symbols: &[S]) -> BoxStream<'static, BatchEntry> {
        let inputs: Vec<String> = symbols.iter().map(|s| s.as_ref().to_string()).collect();
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(relay) = self
            .inner
            .upstreams
            .first()
            .filter(|u| u.provider == Provider::Relay)
        {
            return crate::native::relay_stream(self.clone(), relay.base_url.clone(), inputs);
        }
        let _ = Provider::Relay;
        self.poll_stream(inputs)
    }

    /// The relay's base URL, when the first provider is a relay (whose push stream the
    /// clients follow).
    pub fn relay_url(&self) -> Option<&str> {
        (self.inner.upstreams.first())
            .filter(|u| u.provider == Provider::Relay)
            .map(|u| u.base_url.as_str())
    }

    /// [`QuantDb::subscribe`] by asking once a TTL window.
    pub(crate) fn poll_stream(&self, inputs: Vec<String>) -> BoxStream<'static, BatchEntry> {
        struct State {
            db: QuantDb,
            inputs: Vec<String>,
            last: HashMap<String, BatchEntry>,
            ready: VecDeque<BatchEntry>,
            first: bool,
        }
        let state = State {
            db: self.clone(),
            inputs,
            last: HashMap::new(),
            ready: VecDeque::new(),
            first: true,
        };
        Box::pin(stream::unfold(state, |mut st| async move {
            loop {
                if let Some(entry) = st.ready.pop_front() {
                    return Some((entry, st));
                }
                if !std::mem::take(&mut st.first) {
                    let every = st.db.inner.poll_every;
                    platform::sleep(every.unwrap_or_else(|| st.db.ttl_now().max(MIN_POLL))).await;
                }
                for entry in st.db.get_realtime_data_batch(&st.inputs).await {
                    let key = match &entry {
                        BatchEntry::Quote(q) => format!("{}{}", q.exchange, q.symbol),
                        BatchEntry::Error(e) => e.symbol.clone(),
                    };
                    let changed = match (st.last.get(&key), &entry) {
                        (Some(BatchEntry::Quote(a)), BatchEntry::Quote(b)) => {
                            !a.same_market_data(b)
                        }
                        (Some(BatchEntry::Error(a)), BatchEntry::Error(b)) => a.code != b.code,
                        _ => true,
                    };
                    if changed {
                        st.last.insert(key, entry.clone());
                        st.ready.push_back(entry);
                    }
                }
            }
        }))
    }

    /// Quotes a relay pushed: into the memory tier, and written behind to the persistent
    /// tier, as fetched quotes are. Stale ones are passed on, never kept.
    pub(crate) fn remember(&self, quotes: &[Quote]) {
        let fresh: Vec<Quote> = quotes.iter().filter(|q| !q.stale).cloned().collect();
        self.remember_in_memory(&fresh);
        if let Some(writer) = self.inner.writer() {
            writer.enqueue(fresh);
        }
    }

    /// Keeps pushed quotes in the memory tier only (a relay of a fleet: the relay that
    /// fetched them wrote them to the shared tier), unless it holds a later fetch.
    pub(crate) fn remember_in_memory(&self, quotes: &[Quote]) {
        let inner = &self.inner;
        let mut memory = lock(&inner.memory);
        for q in quotes.iter().filter(|q| !q.stale) {
            let Some(s) = q.key() else { continue };
            if memory.peek(&s).is_some_and(|c| c.fetched > q.fetched_at()) {
                continue;
            }
            memory.put(s, inner.entry(Ok(q.clone()), q.fetched_at()));
        }
    }
}
