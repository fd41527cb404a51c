# syntax=docker/dockerfile:1
# The one `switchyard` binary, for every role (control-plane, worker, migrate, health and
# the operator commands). The runtime image holds the binary, CA certificates and the C
# runtime it links against, runs as a non-root user, and needs no writable path, so it runs
# with a read-only root filesystem.
#
# A release builds it from the repository root:
#   docker build -t REGISTRY/switchyard:VERSION .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard \
 && cp target/release/switchyard /usr/local/bin/switchyard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/switchyard /switchyard
USER 65532:65532
# MCP (worker), admin API (control plane), and the two health and metrics listeners.
EXPOSE 8080 50051 9090 9091
ENTRYPOINT ["/switchyard"]
