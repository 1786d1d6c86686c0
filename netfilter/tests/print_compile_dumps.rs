//! Printing is the inverse of compiling: every loadable dump of the
//! corpus is loaded with `nft -f`, pulled, printed with `print::ruleset`,
//! and the text compiled with `syntax::compile` must give back the pulled
//! value under the diff's equality (nothing to do between them).

use linx_netfilter::print::{self, PrintOptions};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::syntax::compile;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Socket;

mod common;

use common::corpus::{corpus, loadable_dumps};
use common::values::difference;

fn check(file: &str) -> Result<(), String> {
    let script =
        std::fs::read_to_string(format!("{}/{file}", corpus())).map_err(|e| e.to_string())?;
    let ns = TestNetns::new();
    ns.nft_load(&script).map_err(|e| format!("nft -f: {e}"))?;
    let mut sock = Socket::open(&ns.netns()).map_err(|e| e.to_string())?;
    let pulled = pull(&mut sock, &Selector::All)
        .map_err(|e| format!("pull: {e}"))?
        .ruleset;
    let text = print::ruleset(&pulled, &PrintOptions::default());
    let compiled = compile(&text).map_err(|d| format!("compile: {d}"))?;
    match difference(&pulled, &compiled) {
        Some(d) => Err(format!("values {d}")),
        None => Ok(()),
    }
}

#[test]
fn printed_dumps_compile_back_to_the_pulled_value() {
    if common::corpus::require().is_none() {
        return;
    }
    let only = std::env::var("LINX_DUMP").ok();
    let files: Vec<String> = loadable_dumps()
        .into_iter()
        .filter(|f| only.as_deref().is_none_or(|o| f.contains(o)))
        .collect();
    let failures = common::corpus::failures_parallel(&files, check);
    println!(
        "print then compile: {}/{} dumps give back the pulled value",
        files.len() - failures.len(),
        files.len()
    );
    assert!(
        !files.is_empty() && failures.is_empty(),
        "{} dumps do not compile back from their printed text:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|(f, e)| format!("{f}: {e}"))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
