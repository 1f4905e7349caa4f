# Multi-stage build of the raccoon server. Not built in this project's CI (no Docker engine
# there); see README.md, section Docker, for the io_uring and locked-memory needs at run time.

# --- build ------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# librdkafka is compiled from source by rdkafka-sys: it needs a C toolchain and make, both in
# this image. The protobuf contract is compiled by protox in crates/proto/build.rs: no protoc
# needed. Every workspace member is copied, as cargo reads them all.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY crates crates
COPY src src
COPY benches benches
COPY clients/rust clients/rust
COPY clients/cli clients/cli
RUN cargo build --release --locked --bin raccoon \
 && install -m 0755 target/release/raccoon /usr/local/bin/raccoon

# --- run --------------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 raccoon \
 && useradd --system --uid 10001 --gid raccoon --no-create-home --shell /usr/sbin/nologin raccoon
COPY --from=build /usr/local/bin/raccoon /usr/local/bin/raccoon
COPY raccoon.example.yaml /etc/raccoon/raccoon.example.yaml
USER raccoon:raccoon
ENV SERVER_BIND_ADDRESS=0.0.0.0 \
    SERVER_WEBSOCKET_PORT=8080
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/raccoon"]
