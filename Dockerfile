# Images of the agent and the operator, from one build:
#
#   docker build --target agent    -t linx/linx-agent:0.1.0 .
#   docker build --target operator -t linx/linx-operator:0.1.0 .
#
# (Not built in this repository's CI sandbox: it has no image registry.)

# --- build: both binaries, release profile, locked dependencies ---------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p linx-agent -p linx-operator \
        --bin linx-agent --bin linx-operator \
 && install -D -m 0755 target/release/linx-agent /out/linx-agent \
 && install -D -m 0755 target/release/linx-operator /out/linx-operator
# linx-cni is copied onto the node and run there by the container runtime:
# linked statically, so it depends on nothing of the host's libc.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p linx-cni --bin linx-cni \
        --target "$(uname -m)-unknown-linux-gnu" \
 && install -D -m 0755 "target/$(uname -m)-unknown-linux-gnu/release/linx-cni" /out/linx-cni

# --- the node agent ------------------------------------------------------
# Runs as root: it enters other pods' network namespaces (setns needs
# CAP_SYS_ADMIN), changes their nf_tables (CAP_NET_ADMIN) and opens
# /proc/<pid>/ns/net of processes of other users (CAP_SYS_PTRACE). A
# non-root user would not hold those capabilities in its effective set
# (no ambient capabilities in the pod spec), so the DaemonSet grants
# exactly these three and drops all others, with a read-only root
# filesystem; see docs/agent.md. It needs no nft binary (it speaks
# netlink), only glibc.
FROM debian:bookworm-slim AS agent
COPY --from=build /out/linx-agent /usr/local/bin/linx-agent
# Copied to the node's CNI bin directory by `linx-agent install-cni`.
COPY --from=build /out/linx-cni /usr/local/bin/linx-cni
ENTRYPOINT ["/usr/local/bin/linx-agent"]
CMD ["run"]

# --- the operator: only talks to the API server, so non-root -------------
FROM debian:bookworm-slim AS operator
COPY --from=build /out/linx-operator /usr/local/bin/linx-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/linx-operator"]
