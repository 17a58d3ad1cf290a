//! A relay's push stream, natively: Server-Sent Events read over reqwest, reconnecting with
//! `Last-Event-ID` so that nothing is missed while the relay still holds the events.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream;

use crate::platform::BoxStream;
use crate::quote::{BatchEntry, Quote};
use crate::{QuantDb, SymbolError};

/// The wait before reconnecting, until the relay advises another.
const RETRY: Duration = Duration::from_secs(3);
/// The most bytes of one event held while it arrives.
const MAX_EVENT: usize = 1 << 20;

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
    pub retry: Option<u64>,
}

/// Takes the complete events off the front of `buffer` (an event ends with a blank line;
/// `\r\n` and `\n` line ends alike). Comments and unknown fields are skipped.
pub(crate) fn take_events(buffer: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some((len, consumed)) = block_end(buffer) {
        let block: Vec<u8> = buffer.drain(..consumed).take(len).collect();
        let mut event = SseEvent {
            event: "message".into(),
            ..SseEvent::default()
        };
        let mut data: Vec<&str> = Vec::new();
        let text = String::from_utf8_lossy(&block);
        for line in text.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => event.id = Some(value.to_string()),
                "event" => event.event = value.to_string(),
                "data" => data.push(value),
                "retry" => event.retry = value.parse().ok(),
                _ => {} // a comment (empty field) or an unknown field
            }
        }
        event.data = data.join("\n");
        if !event.data.is_empty() || event.id.is_some() {
            events.push(event);
        }
    }
    events
}

/// Where the first event of `b` ends: its length, and the bytes it takes with its blank line.
fn block_end(b: &[u8]) -> Option<(usize, usize)> {
    let find = |pat: &[u8]| b.windows(pat.len()).position(|w| w == pat);
    match (find(b"\n\n"), find(b"\r\n\r\n")) {
        (Some(lf), Some(crlf)) if crlf < lf => Some((crlf, crlf + 4)),
        (Some(lf), _) => Some((lf, lf + 2)),
        (None, Some(crlf)) => Some((crlf, crlf + 4)),
        (None, None) => None,
    }
}

/// The entry an event carries: a quote (also kept in `db`'s tiers) or a symbol's error.
fn entry(db: &QuantDb, event: &SseEvent) -> Option<BatchEntry> {
    match event.event.as_str() {
        "quote" => {
            let quote: Quote = serde_json::from_str(&event.data).ok()?;
            db.remember(std::slice::from_ref(&quote));
            Some(BatchEntry::Quote(quote))
        }
        "error" => serde_json::from_str::<SymbolError>(&event.data)
            .ok()
            .map(BatchEntry::Error),
        _ => None,
    }
}

pub(crate) fn relay_stream(
    db: QuantDb,
    base: String,
    inputs: Vec<String>,
) -> BoxStream<'static, BatchEntry> {
    struct State {
        db: QuantDb,
        url: String,
        client: reqwest::Client,
        response: Option<reqwest::Response>,
        buffer: Vec<u8>,
        last_id: Option<String>,
        retry: Duration,
        ready: VecDeque<BatchEntry>,
    }
    let url = format!(
        "{}/api/v1/stream?symbols={}",
        base.trim_end_matches('/'),
        inputs.join(",")
    );
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let state = State {
        db,
        url,
        client,
        response: None,
        buffer: Vec::new(),
        last_id: None,
        retry: RETRY,
        ready: VecDeque::new(),
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if let Some(entry) = st.ready.pop_front() {
                return Some((entry, st));
            }
            let Some(response) = st.response.as_mut() else {
                let mut request = st.client.get(&st.url).header("accept", "text/event-stream");
                if let Some(id) = &st.last_id {
                    request = request.header("last-event-id", id.as_str());
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        st.buffer.clear();
                        st.response = Some(r);
                    }
                    Ok(r) => {
                        tracing::warn!("relay stream {}: HTTP {}", st.url, r.status());
                        crate::platform::sleep(st.retry).await;
                    }
                    Err(e) => {
                        tracing::warn!("relay stream {}: {e}", st.url);
                        crate::platform::sleep(st.retry).await;
                    }
                }
                continue;
            };
            match response.chunk().await {
                Ok(Some(bytes)) if st.buffer.len() + bytes.len() <= MAX_EVENT => {
                    st.buffer.extend_from_slice(&bytes);
                    for event in take_events(&mut st.buffer) {
                        if let Some(id) = &event.id {
                            st.last_id = Some(id.clone());
                        }
                        if let Some(ms) = event.retry {
                            st.retry = Duration::from_millis(ms.clamp(100, 60_000));
                        }
                        st.ready.extend(entry(&st.db, &event));
                    }
                }
                // Ended, failed or flooded: reconnect after the advised wait, resuming.
                _ => {
                    st.response = None;
                    crate::platform::sleep(st.retry).await;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines() {
        let mut buffer = b": hi\n\nretry: 3000\nid: 7\nevent: quote\ndata: {\"a\":\ndata: 1}\n\nid: 8\r\nevent: error\r\ndata: x\r\n\r\nid: 9\ndata: part".to_vec();
        let events = take_events(&mut buffer);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    event: "quote".into(),
                    data: "{\"a\":\n1}".into(),
                    retry: Some(3000)
                },
                SseEvent {
                    id: Some("8".into()),
                    event: "error".into(),
                    data: "x".into(),
                    retry: None
                },
            ]
        );
        assert_eq!(buffer, b"id: 9\ndata: part", "an unfinished event waits");
        buffer.extend_from_slice(b"\n\n");
        assert_eq!(take_events(&mut buffer)[0].data, "part");
        assert!(buffer.is_empty());
    }
}
