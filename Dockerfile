# The logbook binary in a small image. librdkafka is compiled from source by rdkafka-sys.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p logbook-cli --bin logbook

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 logbook
COPY --from=build /src/target/release/logbook /usr/local/bin/logbook
USER logbook
EXPOSE 8080
ENTRYPOINT ["logbook"]
CMD ["all"]
