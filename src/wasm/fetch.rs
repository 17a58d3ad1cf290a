//! The browser transport: `fetch` through gloo-net, aborted when the timeout fires. As
//! natively, redirects are not followed and an answer larger than the request allows is
//! refused, before it is copied into the module's memory (which never shrinks).

use std::time::Duration;

use futures_util::future::{select, Either};
use gloo_net::http::Request;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestRedirect, ResponseType};

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
            let mut builder = Request::get(&request.url)
                .abort_signal(Some(&controller.signal()))
                .redirect(RequestRedirect::Manual);
            for (name, value) in &request.headers {
                // A page cannot set Referer (a forbidden header); the proxy in front adds it.
                if !name.eq_ignore_ascii_case("referer") {
                    builder = builder.header(name, value);
                }
            }
            let limit = request.max_body.min(MAX_BODY_BYTES);
            let too_large = move || failed(format!("answer larger than {limit} bytes"));
            let work = Box::pin(async move {
                let response = builder.send().await.map_err(failed)?;
                if response.type_() == ResponseType::Opaqueredirect {
                    return Err(failed("answered with a redirect, not followed"));
                }
                let status = response.status();
                let announced = (response.headers().get("content-length"))
                    .and_then(|n| n.trim().parse::<u64>().ok());
                if announced.is_some_and(|n| n > limit as u64) {
                    return Err(too_large());
                }
                let js = |e: wasm_bindgen::JsValue| failed(format!("{e:?}"));
                let buffer = web_sys::Response::from(response)
                    .array_buffer()
                    .map_err(js)?;
                let bytes = js_sys::Uint8Array::new(&JsFuture::from(buffer).await.map_err(js)?);
                if bytes.length() as usize > limit {
                    return Err(too_large());
                }
                Ok::<_, TransportError>((status, bytes.to_vec()))
            });
            let timer = gloo_timers::future::sleep(timeout);
            match select(work, timer).await {
                Either::Left((result, _)) => {
                    let (status, body) = result?;
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
