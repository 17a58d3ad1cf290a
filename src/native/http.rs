//! The native transport: reqwest with rustls.

use std::time::Duration;

use crate::platform::BoxFuture;
use crate::transport::{
    host_of, HttpRequest, HttpResponse, Transport, TransportError, MAX_BODY_BYTES,
};
use crate::Error;

/// Sends upstream requests with a pooled reqwest client.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A client with rustls, no redirects, and quantdb's user agent.
    pub fn new() -> Result<Self, Error> {
        // Redirects are not followed: a request goes to the configured address only.
        let client = reqwest::Client::builder()
            .user_agent(concat!("quantdb/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(ReqwestTransport { client })
    }
}

/// `host: what failed: why`, never the URL (its query lists every symbol of the chunk).
fn failure(e: reqwest::Error, url: &str) -> TransportError {
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "answer cut off"
    } else {
        "request failed"
    };
    // The innermost cause says why: DNS lookup, refused, reset, TLS.
    let why = match std::error::Error::source(&e) {
        Some(mut cause) => {
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            cause.to_string()
        }
        None => e.without_url().to_string(),
    };
    TransportError::Failed(format!("{}: {what}: {why}", host_of(url)))
}

impl Transport for ReqwestTransport {
    fn get<'a>(
        &'a self,
        request: &'a HttpRequest,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let mut builder = self.client.get(&request.url).timeout(timeout);
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            let fail = |e| failure(e, &request.url);
            let mut response = builder.send().await.map_err(fail)?;
            let status = response.status().as_u16();
            let limit = request.max_body.min(MAX_BODY_BYTES);
            let too_large = || TransportError::Failed(format!("answer larger than {limit} bytes"));
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(fail)? {
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse { status, body })
        })
    }
}
