//! NFLOG packet messages: arbitrary bytes as a netlink buffer through
//! `LoggedPacket::decode` and the header parser: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linx_netfilter::netlink::Msgs;
use linx_netfilter::nflog::LoggedPacket;

fuzz_target!(|data: &[u8]| {
    for m in Msgs::new(data) {
        let Ok(m) = m else { break };
        if let Ok(Some(p)) = LoggedPacket::decode(&m) {
            let _ = (p.to_string(), p.data(), p.hook_name());
        }
    }
});
