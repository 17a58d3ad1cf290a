//! The browser transport: `fetch` through gloo-net, aborted when the timeout fires.

use std::time::Duration;

use futures_util::future::{select, Either};
use gloo_net::http::Request;

use crate::platform::BoxFuture;
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError, MAX_BODY_BYTES};

/// Sends upstream requests with the page's `fetch`. The upstreams must allow the page's
/// origin (CORS): point the base URLs at a proxy or relay that does.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchTransport;

fn failed(e: impl std::fmt::Display) -> TransportError {
    TransportError::Failed(e.to_string())
}

impl Transport for FetchTransport {
    fn get<'a>(
        &'a self,
        request: &'a HttpRequest,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let controller =
                web_sys::AbortController::new().map_err(|e| failed(format!("{e:?}")))?;
            let mut builder = Request::get(&request.url).abort_signal(Some(&controller.signal()));
            for (name, value) in &request.headers {
                // A page cannot set Referer (a forbidden header); the proxy in front adds it.
                if !name.eq_ignore_ascii_case("referer") {
                    builder = builder.header(name, value);
                }
            }
            let work = Box::pin(async move {
                let response = builder.send().await.map_err(failed)?;
                let status = response.status();
                let body = response.binary().await.map_err(failed)?;
                Ok::<_, TransportError>((status, body))
            });
            let timer = gloo_timers::future::sleep(timeout);
            match select(work, timer).await {
                Either::Left((result, _)) => {
                    let (status, body) = result?;
                    if body.len() > MAX_BODY_BYTES {
                        return Err(failed(format!("answer larger than {MAX_BODY_BYTES} bytes")));
                    }
                    Ok(HttpResponse { status, body })
                }
                Either::Right(((), _)) => {
                    controller.abort();
                    Err(TransportError::Timeout)
                }
            }
        })
    }
}
