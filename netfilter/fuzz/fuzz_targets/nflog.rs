//! NFLOG packet messages: arbitrary bytes as a netlink buffer through
//! `LoggedPacket::decode` and the header parser: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| linx_netfilter::testing::fuzz_nflog(data));
