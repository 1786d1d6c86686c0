#!/usr/bin/env bash
# Every benchmark, Linx beside nft in the same run, in throwaway namespaces
# (root). Results are summarised in BENCHMARKS.md. `quick` for small sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}
echo "## Reconcile (diff, known state, one change, interval sets)"
cargo bench -q -p linx-netfilter --bench reconcile -- $quick
echo
echo "## Compiling nft text"
cargo bench -q -p linx-netfilter --features testing --bench compile -- $quick
echo
echo "## Pull and whole push"
if [ "$quick" = quick ]; then sizes="1000 10000"; else sizes=""; fi
cargo bench -q -p linx-netfilter --features testing --bench pull_push -- $sizes
echo
echo "## Agent: pods x rules"
if [ "$quick" = quick ]; then agent="50 50"; else agent=""; fi
cargo bench -q -p linx-agent --bench converge -- $agent
echo
echo "## Tracing and NFLOG"
cargo bench -q -p linx-netfilter --features testing --bench observe -- $quick
echo
echo "## linx-cni: ADD latency (the real chain, with and without linx-cni)"
if [ "$quick" = quick ]; then cni="20 200 20"; else cni=""; fi
cargo bench -q -p linx-agent --bench cni_add -- $cni
echo
echo "## The cold path: linx-agent apply -f from a fresh process vs nft -f"
cargo bench -q -p linx-agent --bench cold_path -- $quick
echo
echo "## Sets fed by a pod selector (full size: -- 1000 5000 100 50)"
if [ "$quick" = quick ]; then sel="50 1000 100 10"; else sel=""; fi
cargo bench -q -p linx-e2e --bench selectors -- $sel
echo
echo "## Fleet scale through the fake API server (full size: -- 1000 100 50 20 50)"
if [ "$quick" = quick ]; then scale="50 10 10 1 50"; else scale=""; fi
cargo bench -q -p linx-e2e --bench scale -- $scale
echo
echo "## Observability under load: drop logs at 10,000 packets/s and 20 traces at once (more pods: -- 100)"
if [ "$quick" = quick ]; then obs="20 10000 5"; else obs=""; fi
cargo bench -q -p linx-e2e --bench observe -- $obs
