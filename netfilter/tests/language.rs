//! The nft file language against nft 1.0.6 itself: many small whole
//! scripts, each compiled with `syntax::compile_source` and loaded with
//! `nft -f` into a fresh namespace.
//!
//! - Where nft accepts a script, the value pulled from its namespace must
//!   equal ours under the diff's equality (`diff` finds no operation), and
//!   our printing of the pulled value must be nft's own listing, which
//!   loads back in nft.
//! - Where nft refuses, we refuse too, and our message says why.
//! - Commands with no declarative meaning are refused by us whatever nft
//!   does with them; the two forms we accept on purpose although nft 1.0.6
//!   refuses them are checked to still be refused by nft.

use std::path::{Path, PathBuf};

use linx_netfilter::diff::diff;
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::syntax::{compile_source, Includes};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{print, Ruleset, Socket};

/// What a script must give.
enum Expect {
    /// nft accepts; ours is equal.
    Same,
    /// nft accepts; ours is equal in value, and our printing loads back in
    /// nft to nft's listing — where nft's own listing does not (flag sets:
    /// we print the kernel's order, nft reorders).
    ReloadsToListing,
    /// nft refuses; so do we, with a message containing this.
    Refused(&'static str),
    /// We refuse (no declarative meaning), whatever nft does.
    Ours(&'static str),
    /// nft 1.0.6 refuses; we accept on purpose (documented in `syntax::script`).
    Lenient,
}
use Expect::*;

const CASES: &[(&str, &str, Expect)] = &[
    // ---- define / $var ------------------------------------------------
    (
        "define: strings, quoted devices, sets, nesting",
        r#"define WAN = "d0p"
define LAN = lan0
define IFS = { $WAN, "d1p" }
define NETS = { 10.0.0.0/8, 192.168.0.0/16 }
define MORE = { $NETS, 172.16.0.0/12 }
define SSH = 22
define WEB = { 80, 443 }
table netdev t {
	chain c {
		type filter hook ingress device $WAN priority 0;
	}
}
table inet f {
	chain i {
		type filter hook input priority 0; policy accept;
		iifname $WAN accept
		iifname $IFS drop
		iifname $LAN tcp dport $SSH accept
		ip saddr $MORE tcp dport $WEB accept
	}
}
"#,
        Same,
    ),
    (
        "define: concatenations and redefine/undefine",
        r#"define PAIR = 10.0.0.1 . 22
define P = 1
redefine P = 2
define GONE = 3
undefine GONE
table ip t {
	set s {
		type ipv4_addr . inet_service
		elements = { $PAIR }
	}
	chain c {
		ip saddr . tcp dport { $PAIR } accept
		tcp dport $P accept
	}
}
"#,
        Same,
    ),
    (
        "define: scoped to its block",
        "table ip t {\n\tdefine P = 22\n\tchain c {\n\t\ttcp dport $P accept\n\t}\n}\ntable ip u {\n\tchain c {\n\t\ttcp dport $P accept\n\t}\n}\n",
        Refused("unknown identifier 'P'"),
    ),
    (
        "define: twice in one block",
        "define a = 1\ndefine a = 2\n",
        Refused("redefinition of symbol 'a'"),
    ),
    (
        "define: unknown variable",
        "table ip t {\n\tchain c {\n\t\ttcp dport $nope accept\n\t}\n}\n",
        Refused("unknown identifier 'nope'"),
    ),
    // ---- command forms -------------------------------------------------
    (
        "table with no block, then commands",
        "table inet x\nflush table inet x\nadd chain inet x c { type filter hook input priority 0; policy accept; }\nadd rule inet x c tcp dport 22 accept\n",
        Same,
    ),
    (
        "add may be left out",
        "table ip t\nchain ip t c\nrule ip t c tcp dport 22 accept\nset ip t s { type ipv4_addr; }\nelement ip t s { 1.1.1.1 }\ncounter ip t cn\nquota ip t q { 100 bytes }\nmap ip t m { type ipv4_addr : verdict; }\n",
        Same,
    ),
    (
        "flush ruleset and the delete-table idiom",
        "flush ruleset\ntable inet linx\ndelete table inet linx\ntable inet linx {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n\tchain c {\n\t\ttype filter hook input priority filter;\n\t\ttcp dport 113 counter reject with tcp reset\n\t}\n}\nadd element inet linx s { 1.2.3.4 }\n",
        Same,
    ),
    (
        "flush ruleset of one family",
        "table ip t\ntable ip6 t\ntable inet t\nflush ruleset ip\n",
        Same,
    ),
    (
        "flush table keeps chains and set elements",
        "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 1.1.1.1 }\n\t}\n\tchain c {\n\t\tip saddr 1.1.1.1 drop\n\t}\n}\nflush table ip t\nadd rule ip t c accept\n",
        Same,
    ),
    (
        "flush chain and flush set",
        "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 1.1.1.1, 2.2.2.2 }\n\t}\n\tchain c {\n\t\tdrop\n\t}\n}\nflush chain ip t c\nflush set ip t s\nadd element ip t s { 3.3.3.3 }\n",
        Same,
    ),
    (
        "insert and index positions",
        "table ip t {\n\tchain c {\n\t\ttcp dport 1\n\t\ttcp dport 2\n\t}\n}\ninsert rule ip t c index 1 tcp dport 3\nadd rule ip t c index 0 tcp dport 4\ninsert rule ip t c tcp dport 5\n",
        Same,
    ),
    (
        "index out of range",
        "table ip t {\n\tchain c {\n\t\ttcp dport 1\n\t}\n}\nadd rule ip t c index 5 tcp dport 4\n",
        Refused("no rule at index 5"),
    ),
    (
        "delete and destroy of chains, sets, elements, objects",
        "table ip t {\n\tcounter k {\n\t}\n\tquota q {\n\t\t10 mbytes\n\t}\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 1.1.1.1, 2.2.2.2 }\n\t}\n\tchain d {\n\t\taccept\n\t}\n\tchain c {\n\t}\n}\ndelete chain ip t d\ndelete element ip t s { 1.1.1.1 }\ndelete counter ip t k\ndelete quota ip t q\n",
        Same,
    ),
    (
        "re-adding a table clears its flags",
        "table ip t {\n\tflags dormant\n}\nadd table ip t\n",
        Same,
    ),
    (
        "a set's size may change, its type may not",
        "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\tsize 10\n\t}\n}\nadd set ip t s { type ipv4_addr; size 20; }\n",
        Same,
    ),
    (
        "a set's type cannot change",
        "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n}\nadd set ip t s { type ipv6_addr; }\n",
        Refused("set s exists"),
    ),
    (
        "a base chain's policy may change",
        "table ip t {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t}\n}\nadd chain ip t c { type filter hook input priority 0; policy drop; }\n",
        Same,
    ),
    (
        "a base chain's priority cannot change",
        "table ip t {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t}\n}\nadd chain ip t c { type filter hook input priority 10; }\n",
        Refused("cannot change"),
    ),
    (
        "a regular chain cannot become a base chain",
        "table ip t {\n\tchain c {\n\t}\n}\nadd chain ip t c { type filter hook output priority 0; }\n",
        Refused("regular chain"),
    ),
    (
        "delete a missing table",
        "delete table ip t\n",
        Refused("no table ip t"),
    ),
    (
        "create what exists",
        "table ip t\ncreate table ip t\n",
        Refused("table ip t exists"),
    ),
    (
        "create an existing chain",
        "table ip t {\n\tchain c {\n\t}\n}\ncreate chain ip t c\n",
        Refused("chain c exists"),
    ),
    (
        "create an existing element",
        "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 1.1.1.1 }\n\t}\n}\ncreate element ip t s { 1.1.1.1 }\n",
        Refused("exists"),
    ),
    (
        "delete a missing element",
        "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n}\ndelete element ip t s { 1.1.1.1 }\n",
        Refused("not in set s"),
    ),
    (
        "delete a chain something jumps to",
        "table ip t {\n\tchain d {\n\t}\n\tchain c {\n\t\tjump d\n\t}\n}\ndelete chain ip t d\n",
        Refused("in use"),
    ),
    (
        "delete a set a rule uses",
        "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n\tchain c {\n\t\tip saddr @s drop\n\t}\n}\ndelete set ip t s\n",
        Refused("in use"),
    ),
    // ---- names -----------------------------------------------------------
    (
        "knftables / kube-proxy names with / . -",
        r#"table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.10 . tcp . 53 : goto service-ZISBQVJH-kube-system/kube-dns/tcp/dns-tcp }
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain service-ZISBQVJH-kube-system/kube-dns/tcp/dns-tcp {
		ip daddr 10.96.0.10 tcp dport 53 goto endpoint-5OJB2KTY-kube-system/kube-dns/tcp/dns-tcp__10.244.9.88/53
	}
	chain endpoint-5OJB2KTY-kube-system/kube-dns/tcp/dns-tcp__10.244.9.88/53 {
		meta l4proto tcp dnat to 10.244.9.88:53
	}
}
add chain ip kube-proxy endpoint-AAAA-ns/svc/udp/p__10.0.0.1/9090
add rule ip kube-proxy endpoint-AAAA-ns/svc/udp/p__10.0.0.1/9090 meta l4proto udp dnat to 10.0.0.1:9090
"#,
        Same,
    ),
    // ---- nat forms -------------------------------------------------------
    (
        "nat: addr . port, concatenated keys, prefix maps, to :port",
        r#"table ip n {
	map fwdm {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
		elements = { 1.1.1.1 . 80 : 10.0.0.1 . 8080 }
	}
	map fwd2 {
		type ipv4_addr : ipv4_addr . inet_service
		elements = { 1.1.1.1 : 10.0.0.1 . 8080 }
	}
	map pfx {
		type ipv4_addr : interval ipv4_addr
		flags interval
		elements = { 10.141.11.0/24 : 192.168.2.0/24 }
	}
	chain p {
		type nat hook prerouting priority dstnat;
		dnat ip addr . port to ip daddr . tcp dport map @fwdm
		meta l4proto tcp dnat ip to ip daddr . tcp dport map @fwdm
		meta l4proto tcp dnat ip addr . port to ip daddr map @fwd2
		meta l4proto tcp dnat to ip daddr map @fwd2
		dnat ip to iifname . ip daddr . tcp dport map { "eth0" . 1.2.3.4 . 80 : 10.0.0.2 . 80 }
		tcp dport 81 redirect to :8080
	}
	chain o {
		type nat hook postrouting priority srcnat;
		snat ip prefix to ip saddr map { 10.141.11.0/24 : 192.168.2.0/24 }
		snat ip prefix to ip saddr map @pfx
		snat to 1.2.3.4-1.2.3.10
		snat ip to 10.0.0.0/28
		oifname "eth0" masquerade random,persistent
	}
}
"#,
        Same,
    ),
    (
        "nat: inet tables name the family",
        "table inet n {\n\tchain p {\n\t\ttype nat hook prerouting priority dstnat;\n\t\tdnat ip to 10.0.0.1\n\t\ttcp dport 80 dnat ip6 to [fd00::1]:80\n\t\tmeta nfproto ipv4 tcp dport 8080 dnat to 10.0.0.2:80\n\t}\n}\n",
        Same,
    ),
    // ---- priorities and printing -----------------------------------------
    (
        "priorities by hook",
        "table ip t {\n\tchain a {\n\t\ttype nat hook output priority -100;\n\t}\n\tchain b {\n\t\ttype nat hook prerouting priority dstnat + 10;\n\t}\n\tchain c {\n\t\ttype filter hook input priority mangle - 10;\n\t}\n\tchain d {\n\t\ttype nat hook postrouting priority 105;\n\t}\n}\ntable bridge b {\n\tchain o {\n\t\ttype filter hook output priority out;\n\t}\n}\ntable arp a {\n\tchain i {\n\t\ttype filter hook input priority -300;\n\t}\n}\n",
        Same,
    ),
    (
        "dstnat is not a priority on output",
        "table ip t {\n\tchain c {\n\t\ttype nat hook output priority dstnat;\n\t}\n}\n",
        Refused("invalid priority"),
    ),
    (
        "units, set policy, quotas as nft lists them",
        "table inet q {\n\tquota q1 {\n\t\tover 4096 mbytes\n\t}\n\tquota q2 {\n\t\t1500 kbytes used 1047 kbytes\n\t}\n\tquota q3 {\n\t\t1073741824 bytes\n\t}\n\tset s {\n\t\ttype ipv4_addr\n\t\tpolicy memory\n\t\tsize 1000\n\t\tflags interval,timeout\n\t\tcounter\n\t\tauto-merge\n\t\ttimeout 1h\n\t\tcomment \"x\"\n\t}\n\tchain c {\n\t\tquota 4096 mbytes\n\t\tquota over 2048 mbytes\n\t\tlimit rate 1025 kbytes/second burst 4096 kbytes\n\t\tlimit rate over 4096 mbytes/second\n\t}\n}\n",
        Same,
    ),
    (
        "gbytes is not a unit",
        "table ip g {\n\tchain c {\n\t\tquota 1 gbytes\n\t}\n}\n",
        Refused("gbytes"),
    ),
    // ---- statements nft lists --------------------------------------------
    (
        "a listing of many statements",
        r#"table inet f {
	counter c1 {
	}
	ct helper ftp-standard {
		type "ftp" protocol tcp
		l3proto inet
	}
	set bans {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 10m
	}
	map marks {
		type ipv4_addr : mark
		elements = { 10.0.0.1 : 0x00000001 }
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ct state vmap { invalid : drop, established : accept, related : accept }
		iif "lo" accept
		ip protocol icmp icmp type { echo-request, destination-unreachable } limit rate 10/second accept
		meta l4proto ipv6-icmp accept
		tcp flags syn tcp dport 22 ct state new add @bans { ip saddr timeout 1m limit rate over 5/minute } drop
		tcp dport 21 ct helper set "ftp-standard"
		meta mark set ip saddr map @marks
		ip saddr @bans counter name "c1" drop
		tcp dport 113 reject with tcp reset
		udp dport 53 reject with icmpx admin-prohibited
		log prefix "drop: " level warn flags all
		meta nftrace set 1
		ct mark set 0x00000010 ct zone set 2
		ip dscp cs1 ip ecn not-ect
		tcp option maxseg size 1400-1500 accept
		fib saddr . iif oif missing drop
		jump { tcp dport 8080 accept; }
		counter comment "last"
	}
}
"#,
        Same,
    ),
    (
        "meters",
        "table inet t {\n\tchain c {\n\t\ttcp dport 22 meter m { ip saddr limit rate 10/second } accept\n\t\tmeter n size 100 { ip saddr . tcp dport timeout 10s counter }\n\t\tmeter o { meta mark counter }\n\t}\n}\n",
        Same,
    ),
    (
        "a header option makes the protocol match a dependency",
        "table inet t {\n\tchain c {\n\t\tip protocol tcp tcp option maxseg size 1-535\n\t\tip protocol tcp tcp dport 22\n\t}\n}\ntable netdev n {\n\tchain c {\n\t\tmeta protocol ip ip protocol tcp tcp flags syn / fin,syn,rst,ack tcp option maxseg size 1-535 drop\n\t}\n}\n",
        Same,
    ),
    (
        "flag sets print in the kernel's order, which reloads to nft's listing",
        "table ip t {\n\tset s {\n\t\ttype tcp_flag\n\t\telements = { fin | ack, fin | ack | urg, fin | psh | ack, fin | psh | ack | urg, syn, syn | ack, ack, ack | urg }\n\t}\n\tchain c {\n\t\ttcp flags { fin | ack, fin | ack | urg, syn, syn | ack, ack, ack | urg } accept\n\t\ttcp flags & (fin | syn | rst | ack | urg) == { fin | ack | urg, fin | ack, fin, syn | ack, syn, rst | ack, rst, ack | urg, ack }\n\t}\n}\n",
        ReloadsToListing,
    ),
    (
        "a set's own statements are not repeated by an update",
        "table ip t {\n\tset a {\n\t\ttype ipv4_addr\n\t\tflags dynamic\n\t\tcounter\n\t}\n\tset b {\n\t\ttype ipv4_addr\n\t\tflags dynamic\n\t}\n\tchain c {\n\t\tupdate @a { ip saddr counter }\n\t\tupdate @b { ip saddr counter }\n\t\tupdate @a { ip saddr }\n\t}\n}\n",
        Same,
    ),
    (
        "masks kept in set statements",
        "table ip t {\n\tchain c {\n\t\tmeta mark set meta mark & 0xfff0ffff\n\t\tmeta mark set meta mark & 0xfffffcff | 0x00000c00\n\t\tmeta mark set meta mark & 0xfffff0ff | 0x00000c00\n\t\tmeta mark set meta mark & 0x0000ffff | 0x00ff0000\n\t}\n}\n",
        Same,
    ),
    (
        "ct timeout objects",
        "table ip t {\n\tct timeout a {\n\t\tprotocol tcp\n\t\tl3proto ip\n\t\tpolicy = { established : 600, close : 10, syn_sent : 5 }\n\t}\n\tct timeout b {\n\t\tprotocol udp\n\t\tl3proto ip\n\t\tpolicy = { unreplied : 5, replied : 10 }\n\t}\n}\n",
        Same,
    ),
    (
        "elements per line by type, table heads",
        "table ip t {\n\tcomment \"c\"\n\tset a {\n\t\ttype mark\n\t\telements = { 1, 2, 3, 4, 5, 6, 7 }\n\t}\n\tset b {\n\t\ttype ipv4_addr\n\t\telements = { 1.1.1.1, 1.1.1.2, 1.1.1.3 }\n\t}\n\tset c {\n\t\ttype ether_type\n\t\telements = { ip, ip6, arp }\n\t}\n\tmap d {\n\t\ttype mark : classid\n\t\telements = { 1 : 1:1, 2 : 1:2, 3 : 1:3 }\n\t}\n\tset e {\n\t\ttype ct_state\n\t\telements = { new, established, related }\n\t}\n}\ntable ip u {\n\tflags dormant\n\tcomment \"d\"\n\tchain c {\n\t}\n}\n",
        Same,
    ),
    // ---- refusals that match nft's -------------------------------------------
    (
        "quoted names",
        "table ip t {\n\tchain \"c d\" {\n\t}\n}\n",
        Refused("without quotes"),
    ),
    (
        "ct addresses need a family",
        "table inet t {\n\tchain c {\n\t\tct original saddr 1.2.3.4\n\t}\n}\n",
        Refused("cannot determine ip protocol version"),
    ),
    (
        "last is newer than nft 1.0.6",
        "table ip t {\n\tchain c {\n\t\tcounter last\n\t}\n}\n",
        Refused("last"),
    ),
    (
        "a misspelt verdict",
        "table ip t {\n\tchain c {\n\t\ttcp dport 9999 acept\n\t}\n}\n",
        Refused("did you mean 'accept'?"),
    ),
    (
        "a misspelt field",
        "table ip t {\n\tchain c {\n\t\ttcp dprot 22 accept\n\t}\n}\n",
        Refused("did you mean 'dport'?"),
    ),
    (
        "a misspelt state",
        "table ip t {\n\tchain c {\n\t\tct state estabished accept\n\t}\n}\n",
        Refused("did you mean 'established'?"),
    ),
    (
        "a set of another type",
        "table ip t {\n\tset s {\n\t\ttype inet_service\n\t}\n\tchain c {\n\t\tip saddr @s accept\n\t}\n}\n",
        Refused("ipv4_addr"),
    ),
    (
        "an unknown set",
        "table ip t {\n\tset allowed {\n\t\ttype ipv4_addr\n\t}\n\tchain c {\n\t\tip saddr @alowed accept\n\t}\n}\n",
        Refused("did you mean @allowed?"),
    ),
    (
        "an unknown set in a table with none",
        "table ip t {\n\tchain c {\n\t\tip saddr @nope accept\n\t}\n}\n",
        Refused("has no sets"),
    ),
    (
        "an address where a port goes",
        "table ip t {\n\tchain c {\n\t\ttcp dport 10.0.0.1 accept\n\t}\n}\n",
        Refused("inet_service"),
    ),
    (
        "a port out of range",
        "table ip t {\n\tchain c {\n\t\ttcp dport 70000 accept\n\t}\n}\n",
        Refused("70000"),
    ),
    (
        "a jump to nowhere",
        "table ip t {\n\tchain c {\n\t\tjump nope\n\t}\n}\n",
        Refused("nope"),
    ),
    (
        "a misspelt hook",
        "table ip t {\n\tchain c {\n\t\ttype filter hook inptu priority 0;\n\t}\n}\n",
        Refused("did you mean 'input'?"),
    ),
    (
        "a misspelt priority",
        "table ip t {\n\tchain c {\n\t\ttype filter hook input priority fliter;\n\t}\n}\n",
        Refused("did you mean 'filter'?"),
    ),
    (
        "a rule in a missing chain",
        "table ip t\nadd rule ip t c tcp dport 1\n",
        Refused("no chain c"),
    ),
    // ---- no declarative meaning ------------------------------------------
    ("reset", "table ip t\nreset counters\n", Ours("reset")),
    ("list", "table ip t\nlist tables\n", Ours("declares nothing")),
    (
        "delete rule by handle",
        "add table ip t\nadd chain ip t c\nadd rule ip t c accept\nadd rule ip t c drop\ndelete rule ip t c handle 3\n",
        Ours("handles are chosen by the kernel"),
    ),
    (
        "rule position",
        "add table ip t\nadd chain ip t c\nadd rule ip t c accept\nadd rule ip t c position 2 drop\n",
        Ours("handles are chosen by the kernel"),
    ),
    // ---- accepted on purpose ---------------------------------------------
    (
        "a closing brace right after a rule",
        "table ip t { chain c { tcp dport 22 accept } }\n",
        Lenient,
    ),
    (
        "destroy (nft 1.0.7)",
        "table ip t\ndestroy table ip t\ndestroy table ip u\n",
        Lenient,
    ),
];

/// nft's value of `ns`.
fn pulled(ns: &TestNetns) -> Ruleset {
    let mut s = Socket::open(&ns.netns()).expect("socket");
    pull(&mut s, &Selector::All).expect("pull").ruleset
}

/// Loads `file` with nft (`-I dir`, from `dir`) in a fresh namespace.
fn nft_load(file: &Path, dir: &Path) -> (TestNetns, Result<(), String>) {
    let ns = TestNetns::new();
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["nft", "-I"])
        .arg(dir)
        .arg("-f")
        .arg(file)
        .current_dir(dir)
        .output()
        .expect("run nft");
    let r = if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    (ns, r)
}

/// One script against nft; `Err` says how it differs.
fn check(name: &str, script: &str, expect: &Expect, dir: &Path) -> Result<(), String> {
    let file = dir.join(format!(
        "{}.nft",
        name.replace(|c: char| !c.is_alphanumeric(), "_")
    ));
    std::fs::write(&file, script).map_err(|e| e.to_string())?;
    let includes = Includes::Files {
        dirs: vec![dir.to_path_buf()],
    };
    let ours = compile_source(Some(&file.display().to_string()), script, &includes);
    let (ns, theirs) = nft_load(&file, dir);
    match (expect, &ours, &theirs) {
        (ReloadsToListing, Ok(rs), Ok(())) => {
            let p = pulled(&ns);
            let patch = diff(&p, rs);
            if !patch.is_empty() {
                return Err(format!("differs from nft's value:\n{}", patch.render(rs)));
            }
            let listed = ns.ruleset();
            let printed = print::ruleset(&p, &Default::default());
            let ours = TestNetns::new();
            ours.nft_load(&printed)
                .map_err(|e| format!("our printing does not load in nft: {e}"))?;
            if ours.ruleset() != listed {
                return Err("our printing does not reload to nft's listing".into());
            }
            let theirs = TestNetns::new();
            theirs.load(&listed);
            if theirs.ruleset() == listed {
                return Err("nft's own listing reloads to itself now: make it a Same case".into());
            }
            Ok(())
        }
        (ReloadsToListing, _, _) => Err(format!(
            "not accepted by both: ours {:?}, nft {theirs:?}",
            ours.as_ref().err().map(|d| d.to_string())
        )),
        (Same, Ok(rs), Ok(())) => {
            let p = pulled(&ns);
            let patch = diff(&p, rs);
            if !patch.is_empty() {
                return Err(format!("differs from nft's value:\n{}", patch.render(rs)));
            }
            let listed = ns.ruleset();
            let printed = print::ruleset(&p, &Default::default());
            if printed != listed {
                let first = listed
                    .lines()
                    .zip(printed.lines())
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("nft:  {a}\nours: {b}"))
                    .unwrap_or_else(|| "line count".into());
                return Err(format!("printed differently from nft's listing:\n{first}"));
            }
            let again = TestNetns::new();
            again
                .nft_load(&printed)
                .map_err(|e| format!("our printing does not load in nft: {e}"))?;
            if again.ruleset() != listed {
                return Err("our printing loads to another listing".into());
            }
            Ok(())
        }
        (Same, Err(d), _) => Err(format!("we refuse:\n{d}")),
        (Same, _, Err(e)) => Err(format!("nft refuses:\n{e}")),
        (Refused(want), Err(d), Err(_)) => {
            let text = d.to_string();
            if text.contains(want) {
                Ok(())
            } else {
                Err(format!("our message lacks {want:?}:\n{text}"))
            }
        }
        (Refused(_), Ok(_), _) => Err(format!("we accept what nft refuses: {theirs:?}")),
        (Refused(_), Err(d), Ok(())) => Err(format!("nft accepts what we refuse:\n{d}")),
        (Ours(want), Err(d), _) => {
            let text = d.to_string();
            match (text.contains(want), d.0.iter().all(|d| d.help.is_some())) {
                (true, true) => Ok(()),
                (false, _) => Err(format!("our message lacks {want:?}:\n{text}")),
                (true, false) => Err(format!("our refusal says not what to write:\n{text}")),
            }
        }
        (Ours(_), Ok(_), _) => Err("we accept a command with no declarative meaning".into()),
        (Lenient, Ok(_), Err(_)) => Ok(()),
        (Lenient, Err(d), _) => Err(format!("we refuse:\n{d}")),
        (Lenient, Ok(_), Ok(())) => Err("nft accepts it now: make it a Same case".into()),
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("linx-language-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn scripts_mean_what_they_mean_to_nft() {
    let dir = scratch_dir("cases");
    let only = std::env::var("LINX_CASE").ok();
    let mut failures = Vec::new();
    let mut n = 0;
    for (name, script, expect) in CASES {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        n += 1;
        if let Err(e) = check(name, script, expect, &dir) {
            failures.push(format!("== {name}\n{e}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "language: {}/{n} scripts as nft reads them",
        n - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn includes_are_found_as_nft_finds_them() {
    let dir = scratch_dir("include");
    std::fs::create_dir_all(dir.join("rules.d")).unwrap();
    std::fs::write(
        dir.join("vars.nft"),
        "define SSH = 22\ndefine ADMIN = { 10.0.0.0/8 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rules.d/10-ssh.nft"),
        "add rule inet f input ip saddr $ADMIN tcp dport $SSH accept\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rules.d/20-web.nft"),
        "add rule inet f input tcp dport { 80, 443 } accept\n",
    )
    .unwrap();
    std::fs::write(dir.join("rules.d/.hidden.nft"), "this is not nft\n").unwrap();
    std::fs::write(
        dir.join("chain.nft"),
        "chain forward {\n\ttype filter hook forward priority 0; policy drop;\n}\n",
    )
    .unwrap();
    let main = "include \"vars.nft\"\ntable inet f {\n\tinclude \"chain.nft\"\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n}\ninclude \"rules.d/*.nft\"\ninclude \"none.d/*.nft\"\n";
    check("include", main, &Same, &dir).unwrap();
    check(
        "missing include",
        "include \"missing.nft\"\n",
        &Refused("File not found: missing.nft"),
        &dir,
    )
    .unwrap();
    std::fs::write(dir.join("self.nft"), "include \"self.nft\"\n").unwrap();
    check(
        "self include",
        "include \"self.nft\"\n",
        &Refused("Include nested too deeply"),
        &dir,
    )
    .unwrap();
    // An error inside an included file names that file.
    std::fs::write(
        dir.join("bad.nft"),
        "table ip t {\n\tchain c {\n\t\ttcp dport 99999 accept\n\t}\n}\n",
    )
    .unwrap();
    let err = compile_source(
        None,
        "include \"bad.nft\"\n",
        &Includes::Files {
            dirs: vec![dir.clone()],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("{}:3:13:", dir.join("bad.nft").display())),
        "{err}"
    );
    // A text that must stand alone refuses include.
    assert!(linx_netfilter::syntax::compile("include \"vars.nft\"\n").is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_position_far_along_one_line_prints() {
    let mut ports: Vec<String> = (1..=65535).map(|p| p.to_string()).collect();
    ports.extend((0..4465).map(|p| (p % 60000 + 1).to_string()));
    ports.insert(60_000, "70000".into());
    let script = format!(
        "table inet t {{\n\tchain c {{\n\t\ttcp dport {{ {} }} accept\n\t}}\n}}\n",
        ports.join(", ")
    );
    let err = linx_netfilter::syntax::compile(&script).unwrap_err();
    let d = err.first().unwrap();
    assert_eq!(d.line, 3);
    assert!(d.column > 300_000, "column {}", d.column);
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].len() < 120,
        "quoted line is a window: {}",
        lines[1]
    );
    let caret = lines[2].find('^').expect("a caret");
    assert!(lines[1][caret..].starts_with("70000"), "{text}");
    let ns = TestNetns::new();
    assert!(ns.nft_load(&script).is_err(), "nft refuses it too");
}

/// `written_rules` (for pointing at a rule the kernel refused): every rule
/// a script adds, in order, at its place — in a table block, an `add rule`
/// and an `insert rule` command alike — and compiled as `compile_source`
/// compiles it.
#[test]
fn written_rules_are_where_the_script_writes_them() {
    let text = "table inet t {\n\tchain c {\n\t\ttcp dport 1 accept\n\t\ttcp dport { 2, 3 } drop\n\t}\n}\nadd rule inet t c udp dport 5 accept\ninsert rule inet t c udp dport 6 accept\n";
    let written = linx_netfilter::syntax::written_rules(Some("f.nft"), text, &Includes::Refuse);
    let places: Vec<(&str, &str, usize, usize, &str)> = written
        .iter()
        .map(|w| {
            (
                w.table.as_str(),
                w.chain.as_str(),
                w.at.line,
                w.at.column,
                w.at.file.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            ("t", "c", 3, 3, "f.nft"),
            ("t", "c", 4, 3, "f.nft"),
            ("t", "c", 7, 1, "f.nft"),
            ("t", "c", 8, 1, "f.nft"),
        ]
    );
    assert_eq!(written[1].at.source_line.trim(), "tcp dport { 2, 3 } drop");
    // The rules are the compiled ones: the chain holds them, the inserted
    // one first.
    let rs = compile_source(Some("f.nft"), text, &Includes::Refuse).unwrap();
    let chain = &rs.tables[0].chains[0].rules;
    let order = [3, 0, 1, 2];
    for (i, w) in order.iter().map(|&i| &written[i]).enumerate() {
        assert_eq!(chain[i], w.rule, "rule {i}");
    }
    // A script that does not parse has none.
    assert!(
        linx_netfilter::syntax::written_rules(None, "table inet t {", &Includes::Refuse).is_empty()
    );
}
