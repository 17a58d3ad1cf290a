//! Fuzzes the persistent tier's record decoders, `Record::decode` (IndexedDB) and
//! `Record::decode_compact` (the file log): no panic, a found quote is the asked symbol's.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantdb_fuzz::check_stored(data);
});
