# Multi-stage build of the one hyperspace binary (api, worker, dev, ...).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /out/hyperspace ./cmd/hyperspace

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl git && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/hyperspace /usr/local/bin/hyperspace
RUN useradd -m -u 10001 hyperspace && mkdir -p /state /archive && chown hyperspace /state /archive
USER hyperspace
ENV HYPERSPACE_STATE_DIR=/home/hyperspace/.hyperspace
ENTRYPOINT ["hyperspace"]
