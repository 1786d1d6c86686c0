//! `syntax::compile` on arbitrary scripts, and `compile_rule` on arbitrary
//! rule lines in every family: must return, never panic, and their
//! diagnostics must print.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linx_netfilter::syntax::{compile, compile_rule};
use linx_netfilter::{Family, Table};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(src) = std::str::from_utf8(rest) else {
        return;
    };
    // Diagnostics are printed too: quoting a position must never fail.
    if let Err(d) = compile(src) {
        let _ = d.to_string();
    }
    let fam = Family::ALL[first as usize % Family::ALL.len()];
    if let Err(d) = compile_rule(fam, &Table::new(fam, "t"), src) {
        let _ = d.to_string();
    }
});
