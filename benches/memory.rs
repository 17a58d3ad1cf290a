//! Memory per cached quote: live heap bytes held by a client with 5,000 quotes in its memory
//! tier (its LRU table included), counted by a wrapping allocator; the upstream answers are
//! built in process, no server. Run with `cargo bench --bench memory`.
//! (Native only: on wasm32 this target is empty.)

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, Ordering};

    use std::sync::Arc;
    use std::time::Duration;

    use mock_upstream::MockUpstream;
    use quantdb::{BoxFuture, HttpRequest, HttpResponse, Provider, QuantDb, TransportError};

    /// Sina's wire format from the mock's market, built in this process without a server:
    /// nothing but the client holds memory across the measurement.
    struct InProcessSina;

    impl quantdb::Transport for InProcessSina {
        fn get<'a>(
            &'a self,
            request: &'a HttpRequest,
            _timeout: Duration,
        ) -> BoxFuture<'a, Result<HttpResponse, TransportError>> {
            let keys: Vec<String> = (request.url.rsplit_once("list=").unwrap().1)
                .split(',')
                .map(String::from)
                .collect();
            let body = mock_upstream::answer_body(mock_upstream::Provider::Sina, &keys, 0);
            Box::pin(async move { Ok(HttpResponse { status: 200, body }) })
        }
    }

    struct Counting;

    static LIVE: AtomicIsize = AtomicIsize::new(0);

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Live heap held by a client whose memory tier holds `N` quotes (capacity `N`, so the
    /// LRU's table is sized for them), from before the client is built to after the batch
    /// answer is dropped: the tier's entries, its table, and the client's small fixed state.
    pub fn main() {
        const N: usize = 5000;
        let keys: Vec<String> = MockUpstream::listed_keys().into_iter().take(N).collect();
        // Build the mock's market data first: it is not the client's memory.
        mock_upstream::answer_body(mock_upstream::Provider::Sina, &keys, 0);
        let before = LIVE.load(Ordering::Relaxed);
        let db = futures_executor::block_on(
            QuantDb::builder()
                .persistent(false)
                .memory_capacity(N)
                .providers([Provider::Sina])
                .transport(Arc::new(InProcessSina))
                .build(),
        )
        .unwrap();
        let entries = futures_executor::block_on(db.get_realtime_data_batch(&keys));
        assert!(entries.iter().all(|e| e.quote().is_some()));
        drop(entries);
        let after = LIVE.load(Ordering::Relaxed);
        assert_eq!(db.cache_stats().memory_entries, N);
        println!(
            "memory tier: {N} quotes, {} bytes live, {} bytes per cached quote (LRU table included)",
            after - before,
            (after - before) / N as isize
        );
        drop(db);
    }
}
