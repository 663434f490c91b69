# syntax=docker/dockerfile:1
# The panoptes binary in a small image that runs as a non-root user.
#
#   docker build -t panoptes:latest .
#   docker run --rm -p 9464:9464 panoptes:latest          # the shipped clusters.toml: 3 embedded clusters
#   kind load docker-image panoptes:latest --name panoptes-1 && kubectl apply -k deploy/kubernetes
#
# Stage 1 builds with the Rust toolchain (ring needs only the C compiler the image has);
# stage 2 is distroless/cc: glibc and libgcc, no shell, no package manager, user 65532.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin panoptes \
 && cp target/release/panoptes /usr/local/bin/panoptes

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /usr/local/bin/panoptes /usr/local/bin/panoptes
# The default configuration (embedded clusters, runs anywhere); in Kubernetes the
# panoptes-config ConfigMap is mounted over /etc/panoptes instead (deploy/kubernetes/).
COPY clusters.toml /etc/panoptes/clusters.toml
ENV PANOPTES_CONFIG=/etc/panoptes/clusters.toml \
    PANOPTES__RUNTIME__METRICS_ADDR=0.0.0.0:9464
EXPOSE 9464
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/panoptes"]
CMD ["run"]
