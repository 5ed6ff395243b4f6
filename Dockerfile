# syntax=docker/dockerfile:1
#
# argomap image: the release binary on distroless cc (glibc + libgcc + CA certificates, no shell,
# no package manager), running as the distroless `nonroot` user 65532.
#
# The build step is the same `cargo build --release --locked` that `make build` and the tests run
# (restricted to the one binary), on the same toolchain version (1.95) and the same Cargo.lock, so
# what CI tests is what ships. glibc rather than musl: no separate target or C toolchain, and
# glibc's allocator instead of musl's, which is slow under tokio's many threads.
#
#   docker build -t argomap:0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" --build-arg CREATED="$(date -u +%FT%TZ)" .

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole workspace (see .dockerignore): Cargo needs every member's manifest and target path.
COPY . .
# Registry and target dir in BuildKit caches; the binary is copied out of the cached target dir
# in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin argomap \
    && install -D -m 0755 target/release/argomap /out/argomap

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="argomap" \
      org.opencontainers.image.description="Kubernetes operator that maps Argo CD destination clusters to the clusters a platform knows" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder /out/argomap /argomap
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/argomap"]
CMD ["run"]
