//! Push across a fleet of relays ([`PushBus`]; `quantdb::native::RedisStore` is one): one
//! relay polls for the streams of every relay, and every relay's subscribers get the changes.
//!
//! - Each relay says which symbols its streams want, and tries to take (or keep) the fleet's
//!   poll lease, once a poll window.
//! - The relay holding the lease polls the union of every relay's symbols, and publishes what
//!   changed; the bus numbers the events (one sequence for the fleet) and sends them to every
//!   relay, itself included.
//! - Every relay keeps the same numbered events in its recent window: a client that resumes
//!   with `Last-Event-ID` on another relay of the fleet gets what it missed, not a snapshot.
//! - When the bus is unavailable, each relay polls for its own streams, as a lone relay does.
//!   When the polling relay dies, its lease runs out and another relay takes it.

use std::fmt::Debug;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::platform::BoxFuture;
use crate::symbol::Symbol;

/// One event as the fleet sends it: the symbol's key, `quote` or `error`, and its JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusEvent {
    /// The symbol's key (`sh600000`).
    pub symbol: String,
    /// `quote` or `error`.
    pub kind: String,
    /// The quote's or the error's JSON.
    pub data: String,
}

/// Events as numbered by the bus: the `n`th has the id `<epoch>-<first + n>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Tells this numbering from an earlier one (the bus lost its sequence).
    pub epoch: u64,
    /// The sequence number of the first event.
    pub first: u64,
    /// The events, in order.
    pub events: Vec<BusEvent>,
}

/// What carries push events between the relays of a fleet.
pub trait PushBus: Send + Sync + Debug {
    /// Whether the bus works now; when it does not, each relay polls for itself.
    fn is_available(&self) -> bool;

    /// Says that this relay's streams want `symbols` (for `hold`), and takes or keeps the
    /// fleet's poll lease for `hold`: `true` when this relay is to poll.
    fn register<'a>(
        &'a self,
        symbols: &'a [Symbol],
        hold: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// The symbols the streams of every relay want.
    fn wanted(&self) -> BoxFuture<'_, Result<Vec<Symbol>, Error>>;

    /// Numbers the events and sends them to every relay, this one included.
    fn publish(&self, events: Vec<BusEvent>) -> BoxFuture<'_, Result<(), Error>>;

    /// The events of the fleet as they arrive, in order. The first call takes the receiver;
    /// later calls get `None`.
    fn listen(&self) -> Option<tokio::sync::mpsc::Receiver<Published>>;

    /// Gives the poll lease up, and withdraws this relay's symbols (at shutdown).
    fn resign(&self) -> BoxFuture<'_, ()>;
}

/// How often each relay of a fleet says which symbols its streams want, and the polling relay
/// renews its lease (also while it polls: a slow upstream does not cost it the lease).
pub(super) const RENEW_EVERY: Duration = Duration::from_secs(2);

/// How long the poll lease and a relay's symbols last unrenewed: a polling relay that died is
/// replaced within this, whatever the TTL.
pub(super) const LEASE: Duration = Duration::from_secs(6);
