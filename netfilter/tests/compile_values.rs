//! The compiler builds common expressions directly as typed values instead
//! of encoding attributes and decoding them back (issue #20). Here every
//! expression it builds — in rules, anonymous and named sets, elements and
//! dynset statements — must equal what the codec decodes from the
//! expression's own encoding, over the golden inputs, the real-world
//! rulesets, our examples and (when present) the conformance corpus's
//! dumps. That each is built with the attributes the kernel dumps is
//! checked by `syntax::compile::emit`'s unit test (against the old
//! encode-and-decode construction), `golden` (bytecode) and
//! `compile_conformance` (the value pulled after nft loads each rule).

use linx_netfilter::expr::Expr;
use linx_netfilter::netlink::{Attrs, Writer};
use linx_netfilter::syntax::{compile_source, Includes};
use linx_netfilter::Ruleset;

mod common;

/// Every expression of `rs`, nested ones (dynset, set elements) included.
fn exprs(rs: &Ruleset) -> Vec<&Expr> {
    let mut out = Vec::new();
    for t in &rs.tables {
        let sets = t.sets.iter().chain(
            t.chains
                .iter()
                .flat_map(|c| c.rules.iter())
                .flat_map(|r| r.sets.iter()),
        );
        for s in sets {
            out.extend(s.exprs.iter());
            out.extend(s.elements.iter().flat_map(|e| e.exprs.iter()));
        }
        out.extend(
            t.chains
                .iter()
                .flat_map(|c| c.rules.iter())
                .flat_map(|r| r.exprs.iter()),
        );
    }
    out
}

fn roundtrip(e: &Expr) -> Expr {
    let mut w = Writer::new();
    e.encode_body(&mut w);
    let bytes = w.into_bytes();
    Expr::decode_body(Attrs::new(&bytes)).expect("decodes")
}

/// Files to compile: ours always, the corpus's dumps when present.
fn inputs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        root.join("tests/golden"),
        root.join("tests/rulesets"),
        root.join("../examples"),
    ];
    if let Some(c) = common::corpus::optional() {
        dirs.push(c.join("dumps"));
    }
    let mut out = Vec::new();
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "nft") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn compiled_expressions_equal_their_decoded_encoding() {
    let (mut files, mut checked) = (0, 0);
    let mut bad = Vec::new();
    for p in inputs() {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let name = p.display().to_string();
        let Ok(rs) = compile_source(Some(&name), &text, &Includes::Refuse) else {
            continue;
        };
        files += 1;
        for e in exprs(&rs) {
            checked += 1;
            let back = roundtrip(e);
            if &back != e {
                bad.push(format!("{name}: built {e:?}\n  codec gives {back:?}"));
            }
        }
    }
    println!("{checked} expressions of {files} compiled files checked");
    assert!(files >= 20, "too few files compiled: {files}");
    assert!(
        bad.is_empty(),
        "{} differ:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}
