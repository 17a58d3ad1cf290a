//! Memory per cached quote: live heap bytes added by 5,000 quotes in the memory tier,
//! counted by a wrapping allocator. Run with `cargo bench --bench memory`.
//! (Native only: on wasm32 this target is empty.)

#[cfg(not(target_arch = "wasm32"))]
#[path = "../tests/support/mock_upstream.rs"]
mod mock_upstream;

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::mock_upstream;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, Ordering};

    use mock_upstream::{MockConfig, MockUpstream};
    use quantdb::{Provider, QuantDb};

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

    pub fn main() {
        const N: usize = 5000;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mock = rt
            .block_on(MockUpstream::start(MockConfig::default()))
            .unwrap();
        let mut builder = QuantDb::builder().persistent(false);
        for p in Provider::ALL {
            builder = builder.base_url(p, mock.base_url());
        }
        let db = rt.block_on(builder.build()).unwrap();
        let keys = MockUpstream::listed_keys();
        // Warm the connection pool so that only the cache grows during the measurement.
        rt.block_on(db.get_realtime_data_batch(&keys[..1]));
        let symbols = &keys[1..=N];
        let before = LIVE.load(Ordering::Relaxed);
        let entries = rt.block_on(db.get_realtime_data_batch(symbols));
        assert!(entries.iter().all(|e| e.quote().is_some()));
        drop(entries);
        let after = LIVE.load(Ordering::Relaxed);
        assert_eq!(db.cache_stats().memory_entries, N + 1);
        println!(
            "memory tier: {N} quotes, {} bytes live, {} bytes per cached quote",
            after - before,
            (after - before) / N as isize
        );
    }
}
