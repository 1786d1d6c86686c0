//! `syntax::compile` evaluates each command as soon as it is parsed, and
//! takes a table block's rules before the block ends when they mean the
//! same then. Whatever a file says, that must give exactly what evaluating
//! the whole parsed script in order gives (`syntax::parse`, then
//! `script::evaluate`, where a block's rules wait for its end): the same
//! ruleset, or the same errors in the same order.

use linx_netfilter::syntax::{self, script};
use linx_netfilter::testing::realistic_ruleset;

mod common;

/// What a compile says, without the quoted source line (the whole-script
/// path leaves it to its caller).
type Outcome = Result<linx_netfilter::Ruleset, Vec<(usize, usize, usize, String, Option<String>)>>;

fn errors(ds: Vec<syntax::Diagnostic>) -> Outcome {
    Err(ds
        .into_iter()
        .map(|d| (d.line, d.column, d.len, d.message, d.help.map(String::from)))
        .collect())
}

fn streamed(src: &str) -> Outcome {
    syntax::compile(src).or_else(|ds| errors(ds.0))
}

fn whole(src: &str) -> Outcome {
    match syntax::parse(src) {
        Ok(script) => script::evaluate(&script.commands).or_else(errors),
        Err(ds) => errors(ds.0),
    }
}

fn same(name: &str, src: &str) {
    assert_eq!(
        streamed(src),
        whole(src),
        "{name}: streamed and whole-script evaluation differ"
    );
}

/// Table blocks whose rules refer to what is declared further down, jump
/// to chains below (or to none), carry anonymous sets around a rule that
/// must wait, bind chains, or set the table's flags after a chain.
const CASES: &[(&str, &str)] = &[
    (
        "jumps to chains below",
        "table inet t {\n chain a {\n  type filter hook input priority 0;\n  iifname \"e0\" jump b\n  tcp dport { 1, 2 } goto c\n }\n chain b { accept }\n chain c { drop }\n}\n",
    ),
    (
        "a jump to no chain, errors in order",
        "table inet t {\n chain a {\n  jump nope\n  tcp dport { 1, 2 } accept\n  ip saddr @s accept\n  jump b\n  goto nope2\n }\n set s { type ipv4_addr; }\n chain b { }\n}\n",
    ),
    (
        "a set declared below: that rule and the rest wait, anonymous sets numbered in order",
        "table ip t {\n chain a {\n  tcp dport { 1, 2 } accept\n  tcp dport { 3, 4 } ip saddr @s accept\n  udp dport { 5, 6 } accept\n }\n set s { type ipv4_addr; elements = { 10.0.0.1 } }\n chain b { tcp dport { 7, 8 } drop; update @d { ip saddr } }\n set d { type ipv4_addr; size 10; }\n}\n",
    ),
    (
        "a set redeclared with a size after a rule updates it",
        "table ip t {\n set d { type ipv4_addr; }\n chain a { update @d { ip saddr } }\n set d { type ipv4_addr; size 100; }\n}\n",
    ),
    (
        "bound chains",
        "table inet t {\n chain a {\n  tcp dport 1 accept\n  jump { tcp dport 2 accept; jump { udp dport 3 drop } }\n  tcp dport { 4, 5 } jump b\n }\n chain b { }\n chain __chain0 { }\n}\n",
    ),
    (
        "flags and comment after a chain",
        "table inet t {\n chain a { tcp dport 1 accept }\n flags dormant\n comment \"late\"\n}\n",
    ),
    (
        "flags first, a second block for the same table",
        "table inet t {\n flags dormant\n chain a { tcp dport 1 accept; jump b }\n}\ntable inet t {\n chain b { jump a }\n chain a { tcp dport 2 accept }\n}\n",
    ),
    (
        "an error in a rule, then a parse error",
        "table inet t {\n chain a { tcp dport 1 acept }\n}\ntable inet u {\n chain b { tcp dport }\n",
    ),
    (
        "a rule in error before others that are fine",
        "table inet t {\n chain a {\n  ip saddr 300.1.1.1 accept\n  tcp dport 2 accept\n }\n chain b { jump a }\n}\nadd rule inet t a index 1 tcp dport 3 drop\n",
    ),
    (
        "a jump to no chain before an indexed rule",
        "table inet t {\n chain a {\n  jump nope\n  tcp dport 2 accept\n }\n}\nadd rule inet t a index 1 tcp dport 3 drop\n",
    ),
    (
        "a map to chains below and a verdict map",
        "table inet t {\n chain a { tcp dport vmap { 1 : jump b, 2 : goto c } }\n map m { type inet_service : verdict; elements = { 3 : jump c } }\n chain b { }\n chain c { tcp dport vmap @m }\n}\n",
    ),
    (
        "flags after a chain on the same line",
        "table inet t { chain a { tcp dport 1 accept } flags dormant }\n",
    ),
    (
        "a variable, a chain below",
        "define p = 22\ntable inet t {\n chain a { tcp dport $p jump b }\n chain b { }\n}\n",
    ),
    (
        "objects declared below",
        "table inet t {\n chain a { counter name \"c1\" accept }\n counter c1 { }\n}\n",
    ),
];

#[test]
fn hand_written_table_blocks() {
    for (name, src) in CASES {
        same(name, src);
    }
    // And what they should give, not only that both agree.
    let rs = syntax::compile(CASES[0].1).expect("jumps to chains below compile");
    assert_eq!(rs.tables[0].chains[0].rules.len(), 2);
    let e = syntax::compile(CASES[1].1).expect_err("a jump to no chain");
    let msgs: Vec<&str> = e.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "no chain nope in table inet t",
            "no chain nope2 in table inet t"
        ]
    );
    assert_eq!((e.0[0].line, e.0[1].line), (3, 7));
    let rs = syntax::compile(CASES[2].1).expect("a set declared below");
    let a = &rs.tables[0].chains[0].rules;
    let names: Vec<&str> = a
        .iter()
        .flat_map(|r| r.sets.iter().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(names, ["__set0", "__set1", "__set2"]);
    let rs = syntax::compile(CASES[5].1).expect("late flags");
    assert_eq!(rs.tables[0].flags, 1, "dormant");
    assert!(rs.tables[0].userdata.is_some(), "the late comment");
    let rs = syntax::compile(CASES[11].1).expect("flags on the same line");
    assert_eq!(rs.tables[0].flags, 1, "dormant");
    let rs = syntax::compile(CASES[12].1).expect("a variable");
    assert_eq!(rs.tables[0].chains[0].rules.len(), 1);
}

#[test]
fn realistic_rulesets_and_files() {
    for n in [1, 10, 250] {
        same(&format!("realistic_ruleset({n})"), &realistic_ruleset(n));
    }
    let mut files = Vec::new();
    for dir in ["tests/golden", "tests/rulesets", "../examples"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for e in std::fs::read_dir(&dir).expect("directory") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "nft") {
                files.push(p.display().to_string());
            }
        }
    }
    if common::corpus::optional().is_some() {
        let root = common::corpus::corpus();
        files.extend(
            common::corpus::loadable_dumps()
                .into_iter()
                .map(|f| format!("{root}/{f}")),
        );
    }
    assert!(files.len() > 20, "found {} files", files.len());
    for f in &files {
        let src = std::fs::read_to_string(f).expect("read");
        same(f, &src);
        // Its verdicts made jumps to a chain no file declares: errors,
        // reported in the same order both ways.
        if src.contains("table ") {
            same(
                &format!("{f} (a chain jumping to itself)"),
                &src.replace("accept", "jump x"),
            );
        }
    }
}
