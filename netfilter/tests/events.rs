//! Kernel events from a namespace, as `nft` causes them.

use std::time::{Duration, Instant};

use futures::StreamExt;
use linx_netfilter::events::{Change, Event, Events, ObjectKind};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Family;

fn collect_until(ev: &mut Events, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        match ev.try_next().unwrap() {
            Some(e) => {
                let stop = done(&e);
                out.push(e);
                if stop {
                    return out;
                }
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    panic!("condition not met; got {out:?}");
}

#[test]
fn reports_nft_changes_with_the_writer() {
    let ns = TestNetns::new();
    let mut ev = Events::subscribe(&ns.netns()).unwrap();
    ns.load("table inet fw {\n chain c {\n  accept\n }\n}\n");
    let got = collect_until(&mut ev, |e| matches!(e, Event::Generation { .. }));
    let has = |kind, name: Option<&str>| {
        got.iter().any(|e| {
            matches!(e, Event::Object { change: Change::Added, kind: k, family: Family::Inet, table, name: n, .. }
                if *k == kind && table == "fw" && n.as_deref() == name)
        })
    };
    assert!(has(ObjectKind::Table, None), "{got:?}");
    assert!(has(ObjectKind::Chain, Some("c")), "{got:?}");
    assert!(got.iter().any(|e| matches!(e, Event::Object { kind: ObjectKind::Rule, chain: Some(c), handle: Some(_), .. } if c == "c")));
    let Some(Event::Generation { id, pid, process }) = got.last() else {
        panic!()
    };
    assert_eq!(*id, 2);
    assert!(pid.is_some());
    assert_eq!(process.as_deref(), Some("nft"), "{got:?}");

    ns.nft(&["delete", "table", "inet", "fw"]).unwrap();
    let got = collect_until(&mut ev, |e| matches!(e, Event::Generation { .. }));
    assert!(
        got.iter().any(|e| matches!(
            e,
            Event::Object {
                change: Change::Deleted,
                kind: ObjectKind::Table,
                ..
            }
        )),
        "{got:?}"
    );
}

#[test]
fn overflow_yields_resync() {
    let ns = TestNetns::new();
    // A tiny buffer that thousands of rule events cannot fit in.
    let mut ev = Events::subscribe_with_buffer(&ns.netns(), 4096).unwrap();
    let mut script = String::from("table ip t {\n chain c {\n");
    for i in 0..2000 {
        script.push_str(&format!("  ip saddr 10.0.{}.{} drop\n", i / 256, i % 256));
    }
    script.push_str(" }\n}\n");
    ns.load(&script);
    let got = collect_until(&mut ev, |e| matches!(e, Event::Resync));
    assert!(matches!(got.last(), Some(Event::Resync)));
}

#[tokio::test]
async fn the_async_stream_delivers_events() {
    let ns = TestNetns::new();
    let mut stream = Events::subscribe(&ns.netns())
        .unwrap()
        .into_stream()
        .unwrap();
    let path = ns.path();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["nft", "add", "table", "ip", "streamed"])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first, Event::Object { kind: ObjectKind::Table, ref table, .. } if table == "streamed"),
        "{first:?}"
    );
}
