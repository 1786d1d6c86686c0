#!/usr/bin/env python3
"""Regenerate the golden files of netfilter/tests/golden/ from nft itself.

For every input `NAME.nft` (rules written for these tests), nft 1.0.6 runs
inside a throwaway network namespace (`unshare --net`, gone when nft exits;
the host's ruleset is never touched) and its output is written beside it:

  NAME.bytecode  what `nft --debug=netlink list ruleset` prints after
                 `nft -f NAME.nft`: every set's elements and every rule's
                 expressions as the kernel holds them (the listing nft
                 appends is cut off: it is NAME.list)
  NAME.list      what `nft list ruleset` prints

An input whose first line is `# golden: check-only` holds what this machine's
kernel cannot load (no nft_queue, no flowtables, ...): its NAME.bytecode is
the bytecode nft sends (`nft --check --debug=netlink -f NAME.nft`, rule blocks
only), and it has no NAME.list.

Times print in UTC (TZ=UTC), as the golden test reads them.

Usage, as root: python3 netfilter/tools/gen-golden.py [NAME.nft ...]
The test `netfilter/tests/golden.rs` compares our compiler and printer with
these files without root; `golden_files_are_what_nft_prints` re-runs nft and
fails when a committed file is stale.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.normpath(os.path.join(HERE, "..", "tests", "golden"))
CHECK_ONLY = "# golden: check-only"
NFT_VERSION = "nftables v1.0.6"


def in_netns(script, *args):
    """Runs `sh -c script` in a new network namespace; (status, stdout, stderr)."""
    env = dict(os.environ, TZ="UTC")
    p = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    return p.returncode, p.stdout, p.stderr


def rule_blocks(text):
    """The rule blocks of nft's load-time debug output: a `family table
    chain` line and its indented expression lines, blank line between."""
    out, block = [], None
    for line in text.splitlines():
        words = line.split()
        if line and not line[0].isspace() and len(words) == 3 and "(null)" not in words:
            block = [line]
            out.append(block)
        elif block is not None and line.startswith("  "):
            block.append(line)
        else:
            block = None
    return "".join("\n".join(b) + "\n\n" for b in out)


def generate(path):
    with open(path) as f:
        first = f.readline().rstrip("\n")
    stem = path[: -len(".nft")]
    name = os.path.basename(path)
    if first == CHECK_ONLY:
        _, out, _ = in_netns('nft --check --debug=netlink -f "$1"', path)
        bytecode = rule_blocks(out)
        if not bytecode:
            sys.exit(f"{name}: nft printed no bytecode")
        header = f"# nft --check --debug=netlink -f {name} ({NFT_VERSION}, tools/gen-golden.py)\n"
        listing = None
    else:
        rc, out, err = in_netns(
            'nft -f "$1" && nft --debug=netlink list ruleset && echo "@@@" && nft list ruleset',
            path,
        )
        if rc != 0:
            sys.exit(f"{name}: nft failed:\n{err}")
        debug, listing = out.split("@@@\n", 1)
        if not debug.endswith(listing):
            sys.exit(f"{name}: the debug output does not end with the listing")
        bytecode = debug[: len(debug) - len(listing)]
        header = f"# nft --debug=netlink list ruleset after nft -f {name} ({NFT_VERSION}, tools/gen-golden.py)\n"
    with open(stem + ".bytecode", "w") as f:
        f.write(header + bytecode)
    if listing is not None:
        with open(stem + ".list", "w") as f:
            f.write(listing)
    elif os.path.exists(stem + ".list"):
        os.remove(stem + ".list")


def main():
    version = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout
    if not version.startswith(NFT_VERSION):
        sys.exit(f"the golden files are nft 1.0.6's output; this is {version.strip()}")
    files = sys.argv[1:] or sorted(
        os.path.join(GOLDEN, f) for f in os.listdir(GOLDEN) if f.endswith(".nft")
    )
    for path in files:
        generate(os.path.abspath(path))
        print(f"generated {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
