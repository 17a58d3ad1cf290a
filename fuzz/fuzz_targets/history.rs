//! Fuzzes the daily-history readers of every upstream (`parse_bars`, `parse_factors`) and
//! what is derived from them (adjustments, weeks, months). The first byte picks the upstream
//! and the symbol.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantdb_fuzz::check_history(data);
});
