//! Fuzzes `Symbol::parse` on arbitrary UTF-8: no panic, and a parsed symbol's key round-trips
//! through `Symbol::from_key` and `Symbol::parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantdb_fuzz::check_symbol(data);
});
