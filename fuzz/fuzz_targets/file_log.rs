//! Fuzzes the file cache's log: the input is written as `quotes-v2/quotes.log` of a scratch
//! cache directory (under $TMPDIR, one per process, reused), then the store is opened, read,
//! written and read again (see `check_file_log`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quantdb_fuzz::check_file_log(data);
});
