//! Everything that differs between native targets and `wasm32`, in one place.
//!
//! Native futures must be `Send` (tokio's multi-threaded runtime moves them between threads);
//! the browser is single-threaded and its JS handles are not `Send`. The aliases below let the
//! rest of the crate name one bound and get the right one for the target.

use std::future::Future;
use std::pin::Pin;

cfg_if::cfg_if! {
    if #[cfg(target_arch = "wasm32")] {
        /// `Send + Sync` outside wasm32, nothing on wasm32.
        pub trait MaybeSendSync {}
        impl<T: ?Sized> MaybeSendSync for T {}
        /// A boxed future: `Send` outside wasm32.
        pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;
    } else {
        /// `Send + Sync` outside wasm32, nothing on wasm32.
        pub trait MaybeSendSync: Send + Sync {}
        impl<T: ?Sized + Send + Sync> MaybeSendSync for T {}
        /// A boxed future: `Send` outside wasm32.
        pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
    }
}
