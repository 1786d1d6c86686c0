//! One verdict on validity: whole nft files as people write them, pasted
//! into `spec.nft`, are decided by the engine's compiler — what it accepts
//! is valid, with the same value the agent applies; what it refuses is
//! invalid with the compiler's own message. Covers every real-world file
//! of `netfilter/tests/rulesets/` (listed, so files added later are
//! covered), `examples/`, and the nftables corpus dumps nft loads (from
//! `../shared/conformance`, skipped with a reason when absent).

use std::path::{Path, PathBuf};

use linx_crds::convert::NftOrigins;
use linx_crds::{compile, validate, FirewallRulesetSpec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn nft_spec(text: &str) -> FirewallRulesetSpec {
    FirewallRulesetSpec {
        nft: Some(text.to_owned()),
        ..Default::default()
    }
}

/// `.nft` files directly in `dir`, sorted (none when it does not exist).
fn nft_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nft"))
        .collect();
    v.sort();
    v
}

/// The real-world files: every `.nft` of `netfilter/tests/rulesets/` and
/// of `examples/`.
fn real_world() -> Vec<PathBuf> {
    let mut v = nft_files(&root().join("netfilter/tests/rulesets"));
    v.extend(nft_files(&root().join("examples")));
    v
}

/// Real-world files the engine's compiler does not read yet (language
/// gaps, the nft language side of #13): refused with the compiler's own
/// message, as by every agent. Remove an entry when the compiler reads it.
const PENDING_LANGUAGE: &[(&str, &str)] = &[];

/// The corpus beside the repository, if present.
fn conformance() -> Option<PathBuf> {
    let dir = std::env::var_os("LINX_CONFORMANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/conformance"));
    dir.join("dumps.tsv").exists().then_some(dir)
}

/// Corpus dumps nft 1.0.6 loads (`dumps.tsv` column `loads` = yes).
fn loadable_dumps(dir: &Path) -> Vec<PathBuf> {
    let tsv = std::fs::read_to_string(dir.join("dumps.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next()?;
            (cols.next()? == "yes").then(|| dir.join(file))
        })
        .collect()
}

#[test]
fn every_real_world_file_is_valid_as_spec_nft() {
    let mut files: Vec<(String, String)> = real_world()
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(f).unwrap())
        })
        .collect();
    assert!(files.len() >= 25, "only {} real-world files", files.len());
    // The generated 5,000-rule ACL beside them.
    files.extend(
        linx_netfilter::testing::real_world_rulesets()
            .into_iter()
            .filter(|(name, _)| name.starts_with("generated-")),
    );
    let mut wrong = Vec::new();
    for (name, text) in &files {
        let v = validate(&nft_spec(text));
        let errs: Vec<String> = v.diagnostics.iter().map(|d| d.to_string()).collect();
        match PENDING_LANGUAGE.iter().find(|(f, _)| f == name) {
            None if !v.is_valid() => wrong.push(format!("{name}: {}", errs.join("; "))),
            Some((_, want)) if errs.first().map(String::as_str) != Some(want) => wrong.push(
                format!("{name}: pending, expected refused with {want:?}, got {errs:?}"),
            ),
            _ => {}
        }
    }
    println!(
        "{} real-world files: {} valid, {} pending language gaps",
        files.len(),
        files.len() - PENDING_LANGUAGE.len(),
        PENDING_LANGUAGE.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The idioms the agent has always applied are valid: a clean slate first,
/// the declare/delete/redeclare dance, rule keywords that are also
/// command names.
#[test]
fn idempotent_idioms_are_valid() {
    let files = [
        "flush ruleset\ntable inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t}\n}\n",
        "add table inet linx\ndelete table inet linx\ntable inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t\ttcp dport 22 accept\n\t}\n}\n",
        "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t\ttcp dport 23 counter reject with tcp reset\n\t}\n}\n",
        "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\nflush table inet linx\nadd rule inet linx input tcp dport 80 accept\n",
    ];
    for text in files {
        let v = validate(&nft_spec(text));
        assert!(v.is_valid(), "{text}\n{:?}", v.diagnostics);
        let value = compile(&nft_spec(text)).unwrap();
        let engine = linx_netfilter::syntax::compile(text).unwrap();
        assert_eq!(value, engine, "the agent applies what the engine compiles");
    }
}

/// On the corpus: the verdict is the engine compiler's, and the reference
/// checks refuse nothing nft loads.
#[test]
fn corpus_dumps_valid_exactly_when_the_engine_compiles_them() {
    let Some(dir) = conformance() else {
        println!("skipped: ../shared/conformance is absent (set LINX_CONFORMANCE)");
        return;
    };
    let (mut valid, mut gaps, mut wrong) = (0, 0, Vec::new());
    for f in loadable_dumps(&dir) {
        let text = std::fs::read_to_string(&f).unwrap();
        let v = validate(&nft_spec(&text));
        match linx_netfilter::syntax::compile(&text) {
            // The compiler lacks a feature nft has: invalid, with its message.
            Err(d) => {
                gaps += 1;
                let first = d.first().unwrap();
                let ok = v.diagnostics.iter().any(|x| {
                    x.message.starts_with(&first.message)
                        && x.position == Some((first.line as u32, first.column as u32))
                });
                if !ok {
                    wrong.push(format!("{}: {:?} vs {first}", f.display(), v.diagnostics));
                }
            }
            Ok(rs) if rs.tables.is_empty() => {}
            Ok(_) if v.is_valid() => valid += 1,
            Ok(_) => wrong.push(format!(
                "{}: nft loads it, the engine compiles it, validation refuses: {:?}",
                f.display(),
                v.diagnostics
            )),
        }
    }
    println!("corpus: {valid} valid, {gaps} not compiled by the engine yet");
    assert!(valid > 250, "{valid}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The origin map names each compiled rule by its line: its replay of the
/// script leaves the compiler's tables and rule counts, on every file.
#[test]
fn nft_origins_follow_the_compiler() {
    let mut files = real_world();
    files.extend(
        std::fs::read_dir(root().join("crds/tests/good"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    if let Some(dir) = conformance() {
        files.extend(loadable_dumps(&dir));
    }
    let mut checked = 0;
    for f in files {
        let raw = std::fs::read_to_string(&f).unwrap();
        let text = if f.extension().is_some_and(|e| e == "yaml") {
            let r: linx_crds::FirewallRuleset = serde_yaml::from_str(&raw).unwrap();
            match r.spec.nft {
                Some(t) => t,
                None => continue,
            }
        } else {
            raw
        };
        let Ok(rs) = linx_netfilter::syntax::compile(&text) else {
            continue;
        };
        let o = NftOrigins::of(&text).expect("compiles, so parses");
        let mut want: Vec<_> = rs
            .tables
            .iter()
            .filter_map(|t| Some((linx_crds::convert::crd_family(t.family)?, t.name.clone())))
            .collect();
        want.sort();
        assert_eq!(o.tables(), want, "{}", f.display());
        let counts = o.rule_counts();
        for t in &rs.tables {
            // Chains bound to a rule (`jump { ... }`) have no line of their own.
            for c in t.chains.iter().filter(|c| !c.name.starts_with("__chain")) {
                let got = counts.get(&(t.family, t.name.clone(), c.name.clone()));
                assert_eq!(
                    got,
                    Some(&c.rules.len()),
                    "{}: {} {} {}",
                    f.display(),
                    t.family.name(),
                    t.name,
                    c.name
                );
            }
        }
        checked += 1;
    }
    println!("origins checked on {checked} files");
    assert!(checked > 5);
}

fn warnings(text: &str) -> Vec<String> {
    let v = validate(&nft_spec(text));
    assert!(v.is_valid(), "{:?}", v.diagnostics);
    v.warnings.iter().map(|w| w.to_string()).collect()
}

#[test]
fn warnings_name_what_is_almost_surely_wrong() {
    let text = "table inet fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 22 accept\n\t\tcounter drop\n\t\ttcp dport 80 accept\n\t}\n}\n";
    assert_eq!(
        warnings(text),
        [
            "table inet fw, chain input: policy drop, and no rule accepts by conntrack state: replies to connections the pod opens are dropped too (add `ct state established,related accept`) (spec.nft)",
            "table inet fw, chain input, rule 2, 6:3: unreachable: rule 1 above matches every packet and ends its path (spec.nft)",
        ]
    );
    // A state accept anywhere it applies (here through a jump, or a vmap) silences it.
    for ok in [
        "table inet fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tjump common\n\t}\n\tchain common {\n\t\tct state established,related accept\n\t}\n}\n",
        "table inet fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state vmap { established : accept, related : accept, invalid : drop }\n\t}\n}\n",
        // Output chains of other types, and accept policies, are not concerned.
        "table ip fw {\n\tchain out {\n\t\ttype route hook output priority filter; policy accept;\n\t\taccept\n\t}\n}\n",
    ] {
        assert_eq!(warnings(ok), Vec::<String>::new(), "{ok}");
    }
    // Structured: the rule's field.
    let spec: FirewallRulesetSpec = serde_yaml::from_str(
        "tables:\n- name: fw\n  family: inet\n  chains:\n  - {name: c, rules: [\"tcp dport 1 accept\", \"log drop\", \"accept\"]}\n",
    )
    .unwrap();
    let v = validate(&spec);
    let shown: Vec<String> = v.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        shown,
        ["table inet fw, chain c, rule 2: unreachable: rule 1 above matches every packet and ends its path (spec.tables[0].chains[0].rules[2])"]
    );
}
