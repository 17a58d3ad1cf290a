//! Fuzzes the stored history records (`SymbolHistory::decode_meta`, `decode_year`), as the
//! history files and IndexedDB read them: no panic, what is read round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantdb_fuzz::check_history_record(data);
});
