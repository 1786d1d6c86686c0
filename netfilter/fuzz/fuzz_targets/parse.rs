//! `syntax::parse` on arbitrary text: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = linx_netfilter::syntax::parse(src);
    }
});
