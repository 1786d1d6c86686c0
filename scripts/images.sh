#!/usr/bin/env bash
# Builds the agent and operator images with podman from the repository's
# Dockerfile, then checks them (root; Debian). See README.md, "Images".
#
#   scripts/images.sh                 no registry needed: a base made from
#                                     Debian packages (mmdebstrap) and release
#                                     binaries built here, stripped
#   scripts/images.sh --registry      the Dockerfile's defaults: its base image
#                                     and its `build` stage (needs a registry)
#   --rebuild-base                    make the local base again
#   --no-check                        build only
#
# The images are tagged as deploy/linx.yaml names them. The check runs each
# image under exactly the security context the manifests give it (user,
# capabilities, read-only root, no privilege escalation, hostPID), and:
#   - `--version` prints the workspace's version;
#   - the image holds no shell, compiler or package manager, and its binaries
#     are stripped;
#   - the agent applies examples/web-pod.nft into a pod-like namespace (a
#     process of another user in a network namespace of its own, entered by
#     pid through hostPID) and the kernel then lists what nft itself lists
#     for that file; a second run finds nothing to do; with any one of the
#     granted capabilities dropped, it fails and the namespace stays empty.
# It ends by printing each image's size.
#
# Containers get no network (`--network=none`: a fresh namespace each) and
# podman is installed without its network plugins, so nothing here touches
# the host's own network namespace or firewall.
set -euo pipefail
cd "$(dirname "$0")/.."

registry=no rebuild_base=no check=yes
for arg in "$@"; do
    case $arg in
        --registry) registry=yes ;;
        --rebuild-base) rebuild_base=yes ;;
        --no-check) check=no ;;
        *) echo "usage: $0 [--registry] [--rebuild-base] [--no-check]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "images.sh: needs root (podman storage, namespaces)" >&2; exit 2; }

step_start=$SECONDS
step() { echo "== $* (at ${SECONDS}s)"; }
fail() { echo "images.sh: FAILED: $*" >&2; exit 1; }

# --- tools --------------------------------------------------------------------
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[ $registry = yes ] || command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v readelf >/dev/null || need+=(binutils)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if [ $check = yes ]; then
    command -v nft >/dev/null || need+=(nftables)
    command -v setpriv >/dev/null || need+=(util-linux)
fi
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # No recommends: podman without CNI plugins or netavark cannot create a
    # bridge network, so it never writes firewall rules on the host.
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# runc, not podman's default crun: crun refuses hosts whose cgroups are in
# hybrid mode with a controller on the unified hierarchy (as here).
podman=(podman --runtime runc)
"${podman[@]}" --version

# --- what to build: names and security contexts from the manifests -----------
# One line per workload: NAME IMAGE then the podman flags that reproduce its
# container's security context.
manifest=$(/usr/bin/python3 - deploy/linx.yaml <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if not doc or doc.get("kind") not in ("Deployment", "DaemonSet"):
        continue
    pod = doc["spec"]["template"]["spec"]
    c = pod["containers"][0]
    ctx = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
    flags = []
    if "runAsUser" in ctx:
        flags.append("--user=%d" % ctx["runAsUser"])
    caps = ctx.get("capabilities", {})
    flags += ["--cap-drop=" + x for x in caps.get("drop", [])]
    flags += ["--cap-add=" + x for x in caps.get("add", [])]
    if ctx.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if ctx.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    if pod.get("hostPID"):
        flags.append("--pid=host")
    # RuntimeDefault seccomp is podman's default profile: nothing to add.
    name = c["image"].rsplit("/", 1)[-1].split(":")[0]
    print(name, c["image"], " ".join(flags))
EOF
)
image_of() { awk -v n="$1" '$1 == n {print $2}' <<<"$manifest"; }
flags_of() { awk -v n="$1" '$1 == n {$1 = ""; $2 = ""; print}' <<<"$manifest"; }
agent_image=$(image_of linx-agent)
operator_image=$(image_of linx-operator)
[ -n "$agent_image" ] && [ -n "$operator_image" ] || fail "deploy/linx.yaml names no linx-agent or linx-operator image"
read -ra agent_flags <<<"$(flags_of linx-agent)"
read -ra operator_flags <<<"$(flags_of linx-operator)"

# The binaries of each image: the Dockerfile's ARG defaults (one home).
dockerfile_arg() { sed -n "s/^ARG $1=\"\(.*\)\"$/\1/p" Dockerfile; }
agent_bins=$(dockerfile_arg AGENT_BINARIES)
operator_bins=$(dockerfile_arg OPERATOR_BINARIES)
[ -n "$agent_bins" ] && [ -n "$operator_bins" ] || fail "no AGENT_BINARIES/OPERATOR_BINARIES in Dockerfile"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
for image in "$agent_image" "$operator_image"; do
    [ "${image##*:}" = "$version" ] || fail "$image: deploy/linx.yaml's tag is not the workspace version $version"
done

# --- build ---------------------------------------------------------------------
# Every image made here carries this label (the builds' intermediate ones
# too), so what a run leaves untagged is removed without touching anyone
# else's images.
label=dev.linx.images=1
build_args=()
context=.
if [ $registry = no ]; then
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$suite" ] || fail "no VERSION_CODENAME in /etc/os-release: local mode needs a Debian host"
    base=localhost/linx-base:$suite
    if [ $rebuild_base = yes ] || ! "${podman[@]}" image exists "$base"; then
        step "base $base from Debian packages"
        root=$(mktemp -d)
        trap 'rm -rf "$root"' EXIT
        # The release the binaries are built on (same glibc); only what a
        # Rust binary links (glibc, libgcc_s) and the files every image has.
        mmdebstrap --quiet --variant=extract --skip=output/dev \
            --include=base-files,libc6,libgcc-s1,netbase "$suite" "$root/fs"
        fs=$root/fs
        ldconfig -r "$fs"
        printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$fs/etc/passwd"
        printf 'root:x:0:\nnonroot:x:65532:\n' >"$fs/etc/group"
        install -d -m 0700 -o 65532 -g 65532 "$fs/home/nonroot"
        # Package manager state, and what no binary here reads (iconv
        # modules, manuals); the packages' copyright files stay.
        rm -rf "$fs"/etc/apt "$fs"/var/lib/apt "$fs"/var/cache/apt "$fs"/var/lib/dpkg \
            "$fs"/usr/lib/x86_64-linux-gnu/gconv "$fs"/usr/share/{man,info,lintian,locale}
        find "$fs/usr/share/doc" -type f ! -name copyright -delete
        tar -C "$fs" --numeric-owner -c . | "${podman[@]}" import --quiet --change "LABEL $label" - "$base" >/dev/null
        rm -rf "$root"
        trap - EXIT
    fi

    step "release binaries: $agent_bins $operator_bins"
    bin_args=()
    for b in $agent_bins $operator_bins; do bin_args+=(--bin "$b"); done
    cargo build --release --locked "${bin_args[@]}"
    target=${CARGO_TARGET_DIR:-target}
    context=$target/images
    rm -rf "$context"
    for b in $agent_bins; do install -D -s -m 0755 "$target/release/$b" "$context/prebuilt/agent/$b"; done
    for b in $operator_bins; do install -D -s -m 0755 "$target/release/$b" "$context/prebuilt/operator/$b"; done
    # --pull=never: nothing is fetched; the unused `build` stage is skipped.
    build_args=(--pull=never --network=none --build-arg "BASE=$base" --build-arg BINARIES=prebuilt)
else
    # The build stage fetches crates: the host's network (no new namespace,
    # so no firewall rules are made for it).
    build_args=(--network=host)
fi

for target_image in "agent $agent_image" "operator $operator_image"; do
    read -r stage image <<<"$target_image"
    step "image $image (target $stage)"
    # A short name is also tagged as the name a node's runtime resolves it
    # to, so `podman save` of it imports straight into containerd or CRI-O.
    tags=(-t "$image")
    first=${image%%/*}
    [ "$first" = "$image" ] || [[ $first == *[.:]* ]] || [ "$first" = localhost ] || tags+=(-t "docker.io/$image")
    "${podman[@]}" build --quiet -f Dockerfile --target "$stage" "${tags[@]}" --label "$label" \
        "${build_args[@]}" "$context" >/dev/null
done
"${podman[@]}" image prune --force --filter "label=$label" >/dev/null

# --- check -----------------------------------------------------------------------
# Limits within the host's hard ones (podman's defaults exceed them where root
# lacks CAP_SYS_RESOURCE, as in this sandbox); a soft 1,024 open files, as
# containerd 2 gives a pod.
nofile=$(ulimit -Hn) nproc=$(ulimit -Hu) pid_max=$(cat /proc/sys/kernel/pid_max)
[ "$nofile" != unlimited ] || nofile=1048576
{ [ "$nproc" != unlimited ] && [ "$nproc" -le "$pid_max" ]; } || nproc=$pid_max
run() {
    "${podman[@]}" run --rm --pull=never --network=none \
        --ulimit "nofile=1024:$nofile" --ulimit "nproc=$nproc:$nproc" "$@"
}

if [ $check = yes ]; then
    step "check: --version under each manifest's security context"
    for image in "$agent_image" "$operator_image"; do
        if [ "$image" = "$agent_image" ]; then flags=("${agent_flags[@]}"); else flags=("${operator_flags[@]}"); fi
        bin=$(basename "${image%%:*}")
        got=$(run "${flags[@]}" "$image" --version)
        [ "$got" = "$bin $version" ] || fail "$image --version printed '$got', not '$bin $version'"
        echo "$image: $got (${flags[*]})"
    done

    step "check: user, contents, stripped binaries"
    scratch=$(mktemp -d)
    holder=
    cleanup() {
        [ -z "$holder" ] || kill "$holder" 2>/dev/null || true
        rm -rf "$scratch"
    }
    trap cleanup EXIT
    for image in "$agent_image" "$operator_image"; do
        if [ "$image" = "$agent_image" ]; then bins=$agent_bins flags=("${agent_flags[@]}"); else bins=$operator_bins flags=("${operator_flags[@]}"); fi
        want_user=$(printf '%s\n' "${flags[@]}" | sed -n 's/^--user=//p')
        user=$("${podman[@]}" image inspect --format '{{.Config.User}}' "$image")
        [ "${user%%:*}" = "$want_user" ] || fail "$image runs as '$user', the manifest says runAsUser $want_user"
        cid=$("${podman[@]}" create --pull=never "$image")
        "${podman[@]}" export "$cid" >"$scratch/fs.tar"
        "${podman[@]}" rm "$cid" >/dev/null
        files=$(tar -tf "$scratch/fs.tar")
        bad=$(grep -E '(^|/)(s?bin)/(sh|bash|dash|apt|apt-get|dpkg|cc|gcc|ld|rustc|cargo)$' <<<"$files" || true)
        [ -z "$bad" ] || fail "$image holds $bad"
        shipped=$(sed -n 's|^\./||; s|^usr/local/bin/\(..*\)$|\1|p' <<<"$files" | sort | xargs)
        [ "$shipped" = "$(xargs -n1 <<<"$bins" | sort | xargs)" ] || fail "$image ships '$shipped' in /usr/local/bin, not '$bins'"
        mkdir -p "$scratch/x"
        tar -xf "$scratch/fs.tar" -C "$scratch/x" --wildcards '*usr/local/bin/*'
        for b in $bins; do
            if readelf -S "$scratch/x/usr/local/bin/$b" | grep -qE '\.(symtab|debug_)'; then
                fail "$image: $b is not stripped"
            fi
        done
        rm -rf "$scratch/x" "$scratch/fs.tar"
        echo "$image: user $user, no shell/compiler/package manager, stripped: $bins"
    done

    step "check: the agent programs a pod namespace with exactly the DaemonSet's capabilities"
    # The pod: a process of another user in a network namespace of its own.
    unshare --net setpriv --reuid=65534 --regid=65534 --clear-groups sleep 600 &
    holder=$!
    for _ in $(seq 100); do
        [ "$(cat /proc/$holder/comm 2>/dev/null)" = sleep ] && break
        sleep 0.05
    done
    [ "$(readlink /proc/$holder/ns/net)" != "$(readlink /proc/self/ns/net)" ] || fail "pod process not in a namespace of its own"
    pod_ruleset() { nsenter -t "$holder" -n nft list ruleset; }
    # What nft itself makes of the file, in a throwaway namespace.
    want=$(unshare --net sh -c 'nft -f examples/web-pod.nft && nft list ruleset')
    mount=(-v "$PWD/examples/web-pod.nft:/check/web-pod.nft:ro")
    # Each granted capability is needed: without it, nothing is applied.
    for cap in $(printf '%s\n' "${agent_flags[@]}" | sed -n 's/^--cap-add=//p'); do
        without=()
        for f in "${agent_flags[@]}"; do [ "$f" = "--cap-add=$cap" ] || without+=("$f"); done
        if out=$(run "${without[@]}" "${mount[@]}" "$agent_image" apply --netns "pid:$holder" -f /check/web-pod.nft 2>&1); then
            fail "the agent applied without $cap: $out"
        fi
        [ -z "$(pod_ruleset)" ] || fail "without $cap, the pod namespace was changed"
        echo "without $cap: refused ($(tail -n1 <<<"$out"))"
    done
    run "${agent_flags[@]}" "${mount[@]}" "$agent_image" apply --netns "pid:$holder" -f /check/web-pod.nft >/dev/null
    [ "$(pod_ruleset)" = "$want" ] || { diff <(echo "$want") <(pod_ruleset) >&2 || true; fail "the pod's ruleset is not what nft makes of examples/web-pod.nft"; }
    run "${agent_flags[@]}" "${mount[@]}" "$agent_image" diff --netns "pid:$holder" -f /check/web-pod.nft >/dev/null \
        || fail "after apply, diff still finds something to do"
    echo "with ${agent_flags[*]}: applied, listing equals nft's ($(wc -l <<<"$want") lines), then nothing to do"
    kill "$holder"
    holder=

    step "check: the operator starts as 65532 without capabilities"
    # No cluster here: it must get as far as looking for one, and say so.
    if out=$(run "${operator_flags[@]}" "$operator_image" --metrics-addr 127.0.0.1:8080 2>&1); then
        fail "the operator ran without a cluster: $out"
    fi
    grep -qi 'kubeconfig\|config' <<<"$out" || fail "the operator failed otherwise than for a missing cluster: $out"
    echo "without a cluster: $(tail -n1 <<<"$out")"
fi

# --- sizes -----------------------------------------------------------------------
step "sizes"
printf '%-32s %10s %12s\n' image size compressed
for image in "$agent_image" "$operator_image"; do
    size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
    gz=$("${podman[@]}" save --quiet "$image" | gzip -6 | wc -c)
    awk -v i="$image" -v s="$size" -v g="$gz" 'BEGIN { printf "%-32s %7.1f MB %9.1f MB\n", i, s / 1e6, g / 1e6 }'
done
echo "images.sh: done in $((SECONDS - step_start)) s"
