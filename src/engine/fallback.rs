//! Providers in order: each gets the symbols the previous ones failed or did not know, in
//! chunks of its batch size, fetched concurrently up to the engine's bound.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use futures_util::future::join_all;

use super::{Answer, QuantDb, Upstream};
use crate::error::Error;
use crate::stats::Counters;
use crate::symbol::Symbol;
use crate::transport::{host_of, HttpRequest, TransportError};
use crate::upstream::Provider;

impl QuantDb {
    /// Asks the providers in order; each one gets the symbols the previous ones failed or
    /// did not know, in chunks of its batch size, fetched concurrently.
    pub(super) async fn fetch_upstream(&self, symbols: &[Symbol]) -> HashMap<Symbol, Answer> {
        let mut out = HashMap::with_capacity(symbols.len());
        let mut pending = symbols.to_vec();
        let mut errors: HashMap<Symbol, Vec<Error>> = HashMap::new();
        let mut answered_without: HashSet<Symbol> = HashSet::new();
        for up in &self.inner.upstreams {
            if pending.is_empty() {
                break;
            }
            let chunks: Vec<&[Symbol]> = pending.chunks(up.chunk_size).collect();
            let results = join_all(chunks.iter().map(|chunk| self.fetch_chunk(up, chunk))).await;
            let mut next = Vec::new();
            for (chunk, result) in chunks.into_iter().zip(results) {
                match result {
                    Ok(answers) => {
                        let mut by_symbol: HashMap<Symbol, Answer> = answers.into_iter().collect();
                        for s in chunk {
                            match by_symbol.remove(s) {
                                Some(Ok(q)) => {
                                    out.insert(*s, Ok(q));
                                }
                                // A relay's error for this symbol: the next provider may know better.
                                Some(Err(e)) => {
                                    errors.entry(*s).or_default().push(e);
                                    next.push(*s);
                                }
                                None => {
                                    answered_without.insert(*s);
                                    next.push(*s);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        for s in chunk {
                            errors.entry(*s).or_default().push(e.clone());
                            next.push(*s);
                        }
                    }
                }
            }
            pending = next;
        }
        let tried = self
            .inner
            .upstreams
            .iter()
            .map(|u| u.provider.name())
            .collect::<Vec<_>>()
            .join(", ");
        // Not found only when every provider answered without it; when one of them failed,
        // that one might have known it.
        for s in pending {
            let err = match errors.remove(&s) {
                None => Error::NotFound {
                    symbol: s.to_string(),
                    providers: tried.clone(),
                },
                Some(mut attempts) if attempts.len() == 1 && !answered_without.contains(&s) => {
                    attempts.remove(0)
                }
                Some(attempts) => Error::Unavailable { attempts },
            };
            out.insert(s, Err(err));
        }
        out
    }

    /// One upstream request.
    pub(super) async fn fetch_chunk(
        &self,
        up: &Upstream,
        chunk: &[Symbol],
    ) -> Result<Vec<(Symbol, Answer)>, Error> {
        let inner = &self.inner;
        let request = up.provider.request(&up.base_url, chunk);
        Counters::add(&inner.counters.symbols_fetched, chunk.len());
        let body = self.get(up.provider, &request).await;
        let fetched_at = inner.clock.now();
        let phase = inner.calendar.phase(fetched_at);
        body.and_then(|body| up.provider.answers(&body, fetched_at, phase))
            .inspect_err(|e| {
                inner.counters.failure(up.provider);
                tracing::debug!("{e}");
            })
    }

    /// Sends one request to `which` within the engine's bound on concurrent requests and
    /// its timeout: the body of a `200` answer, or the failure as the provider's error.
    pub(super) async fn get(
        &self,
        which: Provider,
        request: &HttpRequest,
    ) -> Result<Vec<u8>, Error> {
        let inner = &self.inner;
        let provider = which.name().to_string();
        let _permit = inner.permits.acquire().await.map_err(|_| Error::Upstream {
            provider: provider.clone(),
            message: "client is shutting down".into(),
        })?;
        inner.counters.request(which);
        match inner.transport.get(request, inner.timeout).await {
            Ok(resp) if resp.status == 200 => Ok(resp.body),
            // A relay says what failed, with one of our codes: keep it.
            Ok(resp) if provider == "relay" => Err(relayed_error(&resp.body).unwrap_or_else(
                || Error::Upstream {
                    provider,
                    message: format!("{}: HTTP {}", host_of(&request.url), resp.status),
                },
            )),
            Ok(resp) => Err(Error::Upstream {
                provider,
                message: format!("{}: HTTP {}", host_of(&request.url), resp.status),
            }),
            Err(TransportError::Timeout) => Err(Error::Timeout {
                provider,
                host: host_of(&request.url).to_string(),
                timeout_ms: inner.timeout.as_millis() as u64,
            }),
            Err(TransportError::Failed(message)) => Err(Error::Upstream { provider, message }),
        }
    }
}

/// A relay's error body, `{"error": ..., "code": ...}`, as the error it reports.
fn relayed_error(body: &[u8]) -> Option<Error> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("code")?.as_str()?;
    let message = value.get("error")?.as_str()?;
    Some(Error::relayed(code, message.to_string()))
}
