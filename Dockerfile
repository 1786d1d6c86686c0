# Images of the agent and the operator, from one build.
#
# With a registry (the usual way; the binaries are built in the `build` stage):
#
#   docker build --target agent    -t linx/linx-agent:0.1.0 .
#   docker build --target operator -t linx/linx-operator:0.1.0 .
#
# Without one, `scripts/images.sh` builds both with podman from this same
# file: a base made from Debian packages (BASE=localhost/linx-base:SUITE), and
# release binaries built on the host and handed in as the build context
# (BINARIES=prebuilt, context = a directory holding prebuilt/agent/ and
# prebuilt/operator/; the repository has no prebuilt/, so the mistake of
# building that stage from the repository fails at once).
#
# Neither image holds a shell, a compiler or a package manager: a runtime
# base and the stripped binaries.

# The runtime base: the binaries need glibc and libgcc_s, nothing else
# (rustls, no OpenSSL; netlink, no nft binary). Its Debian release must be
# the one the binaries were built on (glibc).
ARG BASE=gcr.io/distroless/cc-debian12
ARG RUST=rust:1.95-bookworm
# Where the binaries come from: `build` (compiled here) or `prebuilt`.
ARG BINARIES=build
# The binaries of each image; adding one to an image is one edit here.
ARG AGENT_BINARIES="linx-agent linx-cni"
ARG OPERATOR_BINARIES="linx-operator"

# --- build: release profile (no debug info), locked dependencies, stripped ---
FROM ${RUST} AS build
ARG AGENT_BINARIES
ARG OPERATOR_BINARIES
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    cargo build --release --locked \
        $(for b in $AGENT_BINARIES $OPERATOR_BINARIES; do echo "--bin $b"; done); \
    for b in $AGENT_BINARIES; do install -D -s -m 0755 "target/release/$b" "/out/agent/$b"; done; \
    for b in $OPERATOR_BINARIES; do install -D -s -m 0755 "target/release/$b" "/out/operator/$b"; done

# --- prebuilt: binaries from the build context -------------------------------
FROM scratch AS prebuilt
COPY prebuilt/agent/ /out/agent/
COPY prebuilt/operator/ /out/operator/

FROM ${BINARIES} AS binaries

# --- the node agent ----------------------------------------------------------
# Runs as root (the DaemonSet's runAsUser: 0): it enters other pods' network
# namespaces (setns needs CAP_SYS_ADMIN), changes their nf_tables
# (CAP_NET_ADMIN) and opens /proc/<pid>/ns/net of processes of other users
# (CAP_SYS_PTRACE). A non-root user would not hold those capabilities in its
# effective set (no ambient capabilities in the pod spec), so the DaemonSet
# grants exactly these three and drops all others, with a read-only root
# filesystem; see docs/agent.md. The binaries carry no file capabilities:
# the image asks for nothing the DaemonSet does not grant.
FROM ${BASE} AS agent
COPY --from=binaries /out/agent/ /usr/local/bin/
USER 0:0
ENTRYPOINT ["/usr/local/bin/linx-agent"]
CMD ["run"]

# --- the operator: only talks to the API server, so non-root (65532, as the
# Deployment's runAsUser), no capabilities ----------------------------------
FROM ${BASE} AS operator
COPY --from=binaries /out/operator/ /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/linx-operator"]
