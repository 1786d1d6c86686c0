//! Trace messages: arbitrary bytes as a netlink buffer through
//! `TraceEvent::decode`, the header parser and the path assembler (with
//! and without a session table): must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| linx_netfilter::testing::fuzz_trace(data));
