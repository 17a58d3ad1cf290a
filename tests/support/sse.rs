//! A Server-Sent Events reader for the tests: events as a client reads them.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

/// One event as a client reads it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The sequence part of the id (`<epoch>-<sequence>`).
    pub id: Option<u64>,
    /// The whole id, as `Last-Event-ID` sends it back.
    pub raw_id: Option<String>,
    pub event: String,
    pub data: Value,
    pub retry: Option<u64>,
}

/// A Server-Sent Events reader over a streaming HTTP response.
pub struct SseClient {
    pub response: reqwest::Response,
    /// Bytes read and not yet parsed (a chunk may end inside a character).
    pub buffer: Vec<u8>,
}

impl SseClient {
    pub async fn open(url: &str, last_id: Option<&str>) -> SseClient {
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        SseClient {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event (comments skipped), `None` when the stream ends; panics after 10 s.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let bytes: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(bytes).unwrap();
                let mut event = SseEvent {
                    id: None,
                    raw_id: None,
                    event: "message".into(),
                    data: Value::Null,
                    retry: None,
                };
                let mut data = String::new();
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("", _)) => {} // a comment (the heartbeat)
                        Some(("id", v)) => {
                            event.raw_id = Some(v.trim().to_string());
                            event.id = v.trim().split_once('-').and_then(|(_, n)| n.parse().ok());
                        }
                        Some(("event", v)) => event.event = v.trim().to_string(),
                        Some(("retry", v)) => event.retry = v.trim().parse().ok(),
                        Some(("data", v)) => data.push_str(v.trim_start()),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue;
                }
                event.data = serde_json::from_str(&data).unwrap();
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .unwrap()?;
            self.buffer.extend_from_slice(&chunk);
        }
    }

    pub async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await.expect("the stream goes on"));
        }
        out
    }
}
