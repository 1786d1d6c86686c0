//! Chain priority names: the validator (a structured spec's `priority`),
//! the compiler (nft text) and the printer accept and list the same names
//! per family and hook as nft does — asked of nft itself in a throwaway
//! namespace, for every family, hook and standard name.

use linx_netfilter::print::{self, PrintOptions};
use linx_netfilter::testing::TestNetns;

const NAMES: &[&str] = &[
    "raw", "mangle", "dstnat", "filter", "security", "srcnat", "out",
];

/// Families with their base-chain hooks (and the devices the hook needs).
const HOOKS: &[(&str, &[(&str, bool)])] = &[
    ("ip", IP_HOOKS),
    ("ip6", IP_HOOKS),
    (
        "inet",
        &[
            ("prerouting", false),
            ("input", false),
            ("forward", false),
            ("output", false),
            ("postrouting", false),
            ("ingress", true),
        ],
    ),
    ("arp", &[("input", false), ("output", false)]),
    ("bridge", IP_HOOKS),
    ("netdev", &[("ingress", true), ("egress", true)]),
];

const IP_HOOKS: &[(&str, bool)] = &[
    ("prerouting", false),
    ("input", false),
    ("forward", false),
    ("output", false),
    ("postrouting", false),
];

fn script(family: &str, hook: &str, devices: bool, priority: &str) -> String {
    let dev = if devices { " device \"lo\"" } else { "" };
    format!("table {family} t {{\n\tchain c {{\n\t\ttype filter hook {hook}{dev} priority {priority}; policy accept;\n\t}}\n}}\n")
}

fn spec(family: &str, hook: &str, devices: bool, priority: &str) -> linx_crds::FirewallRulesetSpec {
    let mut chain = serde_json::json!({
        "name": "c", "type": "filter", "hook": hook, "priority": priority, "policy": "accept",
    });
    if devices {
        chain["devices"] = serde_json::json!(["lo"]);
    }
    serde_json::from_value(serde_json::json!({
        "tables": [{"name": "t", "family": family, "chains": [chain]}],
    }))
    .expect("a well-formed spec")
}

#[test]
fn validator_compiler_and_printer_agree_with_nft_on_priority_names() {
    let ns = TestNetns::new();
    let (mut checked, mut accepted, mut wrong) = (0, 0, Vec::new());
    for (family, hooks) in HOOKS {
        for (hook, devices) in *hooks {
            // A hook this kernel or nft lacks (netdev egress on older
            // kernels) says nothing about names.
            if ns.nft_load(&script(family, hook, *devices, "0")).is_err() {
                println!("skipped: {family} {hook}: nft refuses the chain even at priority 0 here");
                continue;
            }
            ns.nft(&["flush", "ruleset"]).unwrap();
            for name in NAMES {
                checked += 1;
                let text = script(family, hook, *devices, name);
                let nft = ns.nft_load(&text).map(|_| ns.ruleset());
                let _ = ns.nft(&["flush", "ruleset"]);
                let compiled = linx_netfilter::syntax::compile(&text);
                let validated = linx_crds::compile(&spec(family, hook, *devices, name));
                let what = format!("{family} {hook} priority {name}");
                match (&nft, &compiled, &validated) {
                    (Ok(listing), Ok(value), Ok(_)) => {
                        accepted += 1;
                        let printed = print::ruleset(value, &PrintOptions::default());
                        if &printed != listing {
                            wrong.push(format!("{what}: nft lists\n{listing}we print\n{printed}"));
                        }
                    }
                    (Err(_), Err(_), Err(_)) => {}
                    _ => wrong.push(format!(
                        "{what}: nft {}, compiler {}, validator {}",
                        verdict(nft.is_ok()),
                        verdict(compiled.is_ok()),
                        verdict(validated.is_ok())
                    )),
                }
            }
        }
    }
    println!("{checked} family/hook/name cases, {accepted} accepted by nft");
    assert!(
        accepted > 30,
        "only {accepted} accepted: is nft working here?"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "accepts"
    } else {
        "refuses"
    }
}
