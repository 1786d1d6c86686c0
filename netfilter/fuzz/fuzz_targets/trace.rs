//! Trace messages: arbitrary bytes as a netlink buffer through
//! `TraceEvent::decode`, the header parser and the path assembler (with
//! and without a session table): must return, never panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use linx_netfilter::netlink::Msgs;
use linx_netfilter::trace::{Assembler, TraceEvent};
use linx_netfilter::Family;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut own = Assembler::new(Some((Family::Inet, "t".into())), Duration::ZERO);
    let mut all = Assembler::new(None, Duration::ZERO);
    for m in Msgs::new(data) {
        let Ok(m) = m else { break };
        if let Ok(Some(e)) = TraceEvent::decode(&m) {
            let _ = e.headers().to_string();
            own.push(&e, now);
            all.push(&e, now);
        }
    }
    for a in [&mut own, &mut all] {
        a.flush();
        while let Some(p) = a.pop() {
            let _ = (p.to_string(), p.summary());
        }
    }
});
