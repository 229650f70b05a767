# Build stage: compile the release binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p asobi-engine --bin asobi

# Runtime stage: the binary, an example game and a non-root user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home /app asobi \
 && mkdir -p /app/game /app/data \
 && chown -R asobi /app
COPY --from=build /src/target/release/asobi /usr/local/bin/asobi
COPY --chown=asobi examples/arena /app/game
USER 10001
WORKDIR /app
ENV ASOBI_PORT=8080 \
    ASOBI_GAME_DIR=/app/game \
    ASOBI_DATA_DIR=/app/data
EXPOSE 8080
# SIGTERM drains: /ready answers 503, no new match is placed, running matches get
# ASOBI_DRAIN_TIMEOUT_SECS (default 25, under Kubernetes' 30 s grace) and every match record is
# written before exit. Scrape GET /metrics; the ops API and /console need ASOBI_OPS_SECRET(_FILE).
STOPSIGNAL SIGTERM
# glommio needs io_uring and some locked memory: run with `--ulimit memlock=-1` if the host
# default is low, and without a seccomp profile that blocks io_uring.
ENTRYPOINT ["/usr/local/bin/asobi"]
CMD ["serve"]
