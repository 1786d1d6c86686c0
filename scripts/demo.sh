#!/usr/bin/env bash
# The main job without a cluster: push a pod firewall into a throwaway
# network namespace, show what the kernel holds, change one rule and push
# only the difference, then pull it back. Run as root. Never touches the
# host namespace's firewall.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nft >/dev/null || ! command -v nsenter >/dev/null || ! command -v ip >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq nftables iproute2 util-linux >/dev/null
fi

cargo build -q -p linx-agent
agent=target/debug/linx-agent
ns="linx-demo-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
netns="/run/netns/$ns"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "apply examples/web-pod.nft into the throwaway namespace $ns"
"$agent" apply --netns "$netns" -f examples/web-pod.nft

step "what the kernel holds now (nft list ruleset, inside the namespace)"
nsenter --net="$netns" nft list ruleset

step "diff against examples/web-pod-v2.nft (one rule added): exit 1 = changes"
"$agent" diff --netns "$netns" -f examples/web-pod-v2.nft || [ $? -eq 1 ]

step "apply it: only that patch is sent, in one generation-guarded transaction"
"$agent" apply --netns "$netns" -f examples/web-pod-v2.nft

step "applying again changes nothing (no batch is sent)"
"$agent" apply --netns "$netns" -f examples/web-pod-v2.nft

step "apply the FirewallRuleset resource examples/web-pod.yaml (selector ignored without a cluster)"
"$agent" apply --netns "$netns" -f examples/web-pod.yaml

step "pulled back and printed as nft prints it"
"$agent" pull --netns "$netns" --output nft
