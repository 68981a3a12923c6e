# draftwatch container image: a static-enough Rust binary on Debian slim, run as a
# non-root user, with its state directory on a volume.
#
#   docker build -t draftwatch .
#   docker run --rm -v draftwatch-state:/var/lib/draftwatch \
#     -v "$PWD/draftwatch.toml:/etc/draftwatch/draftwatch.toml:ro" -p 9090:9090 draftwatch
#
# The builder and the runtime use the same Debian release (bookworm), so the binary finds
# the glibc it was linked against.

FROM rust:1.89-bookworm AS builder
WORKDIR /src
# Dependencies first, so that changing only the sources reuses this layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/draftwatch-*
COPY src ./src
# N.B. COPY keeps the files' own modification times, which may be older than the
# placeholder build; the removed fingerprints above make cargo rebuild the crate anyway.
RUN cargo build --release --locked

FROM debian:bookworm-slim
# TLS verifies servers against the system's CA certificates. They are left unpinned on
# purpose: an image rebuild should pick up the current set.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 draftwatch \
    && useradd --system --uid 10001 --gid draftwatch --home-dir /var/lib/draftwatch --shell /usr/sbin/nologin draftwatch \
    && install -d -o draftwatch -g draftwatch -m 0700 /var/lib/draftwatch \
    && install -d -m 0755 /etc/draftwatch
COPY --from=builder /src/target/release/draftwatch /usr/local/bin/draftwatch

USER 10001:10001
WORKDIR /var/lib/draftwatch
# The default state.path, "draftwatch-state", is relative to this directory, so the
# state lands on the volume unless the configuration says otherwise.
ENV DRAFTWATCH_CONFIG=/etc/draftwatch/draftwatch.toml
VOLUME ["/var/lib/draftwatch"]
# Only when the configuration has [server] listen = "0.0.0.0:9090".
EXPOSE 9090
ENTRYPOINT ["draftwatch"]
CMD ["run"]
