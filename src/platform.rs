//! Everything that differs between native targets and `wasm32`, in one place.
//!
//! Native futures must be `Send` (tokio's multi-threaded runtime moves them between threads);
//! the browser is single-threaded and its JS handles are not `Send`. The aliases below let the
//! rest of the crate name one bound and get the right one for the target.
//!
//! GBK text is decoded by the WHATWG Encoding Standard's `gbk` decoder on both targets:
//! natively by encoding_rs (the standard's reference implementation), in the browser by the
//! page's own `TextDecoder`, which implements the same standard. Shipping encoding_rs to the
//! browser would add every CJK table it has (about 145 KB gzipped) to the package.

use std::future::Future;
use std::pin::Pin;

cfg_if::cfg_if! {
    if #[cfg(target_arch = "wasm32")] {
        /// `Send + Sync` outside wasm32, nothing on wasm32.
        pub trait MaybeSendSync {}
        impl<T: ?Sized> MaybeSendSync for T {}
        /// A boxed future: `Send` outside wasm32.
        pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;
        /// A boxed stream: `Send` outside wasm32.
        pub type BoxStream<'a, T> = Pin<Box<dyn futures_util::Stream<Item = T> + 'a>>;

        thread_local! {
            static GBK: Option<web_sys::TextDecoder> = web_sys::TextDecoder::new_with_label("gbk").ok();
        }

        /// Runs a future in the background, on the page's event loop.
        pub(crate) fn spawn(task: BoxFuture<'static, ()>) {
            wasm_bindgen_futures::spawn_local(task);
        }

        /// Waits `d` on the page's timers.
        pub(crate) async fn sleep(d: std::time::Duration) {
            gloo_timers::future::sleep(d).await;
        }

        /// Decodes GBK bytes; malformed sequences become U+FFFD.
        pub fn decode_gbk(bytes: &[u8]) -> String {
            GBK.with(|decoder| match decoder {
                Some(d) => d.decode_with_u8_array(bytes).unwrap_or_default(),
                None => String::from_utf8_lossy(bytes).into_owned(),
            })
        }
    } else {
        /// `Send + Sync` outside wasm32, nothing on wasm32.
        pub trait MaybeSendSync: Send + Sync {}
        impl<T: ?Sized + Send + Sync> MaybeSendSync for T {}
        /// A boxed future: `Send` outside wasm32.
        pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
        /// A boxed stream: `Send` outside wasm32.
        pub type BoxStream<'a, T> = Pin<Box<dyn futures_util::Stream<Item = T> + Send + 'a>>;

        /// Runs a future in the background: on the caller's tokio runtime when there is one,
        /// otherwise on a thread of its own. A task that cannot be started is dropped (its
        /// owner notices and does the work later).
        pub(crate) fn spawn(task: BoxFuture<'static, ()>) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(task);
                }
                Err(_) => {
                    let started = std::thread::Builder::new()
                        .name("quantdb-writer".into())
                        .spawn(move || futures_executor::block_on(task));
                    if let Err(e) = started {
                        tracing::warn!("cannot start a background writer: {e}");
                    }
                }
            }
        }

        /// Waits `d` on tokio's timer (the caller's runtime must have time enabled, as
        /// `#[tokio::main]` does).
        pub(crate) async fn sleep(d: std::time::Duration) {
            tokio::time::sleep(d).await;
        }

        /// Decodes GBK bytes; malformed sequences become U+FFFD.
        pub fn decode_gbk(bytes: &[u8]) -> String {
            encoding_rs::GBK.decode_without_bom_handling(bytes).0.into_owned()
        }
    }
}
