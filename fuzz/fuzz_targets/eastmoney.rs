//! Fuzzes the eastmoney answer parser: `Provider::Eastmoney.answers` on arbitrary bytes must not panic,
//! and every quote it answers has finite prices and belongs to its symbol's slot.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantdb_fuzz::check_answers(quantdb::Provider::Eastmoney, data);
});
