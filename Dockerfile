# syntax=docker/dockerfile:1
#
# uprobectl image: a static binary on distroless, run as root.
#
#   docker build -t uprobectl .
#
# uprobectl is x86-64 only, so the binary is always built for linux/amd64
# (cross-compiled when the build machine is not: the code is pure Go) and the
# final image is linux/amd64 whatever machine builds it.
# See deploy/README.md for the capabilities and mounts it needs at run time.

# Builder: runs natively on the build machine. golang:1.26 is the newest
# 1.26.x; go.mod asks for 1.26.8 or later and the image sets
# GOTOOLCHAIN=local, so an older local copy of the image fails the build:
# `docker build --pull` refreshes it.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src

# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# CGO_ENABLED=0: pure Go, statically linked, no libc needed at run time.
# -trimpath: no build-machine paths in the binary; -s -w: no symbol table or
# DWARF (smaller image).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
    go build -trimpath -ldflags="-s -w" -o /out/uprobectl ./cmd/uprobectl

# Final image: no shell, no libc, no package manager; only the binary
# (distroless/static adds CA certificates, tzdata and /etc/passwd).
FROM --platform=linux/amd64 gcr.io/distroless/static-debian12
COPY --from=build /out/uprobectl /usr/local/bin/uprobectl

# uprobectl writes tracefs uprobe_events and opens perf events for all tasks:
# it must run as uid 0 (with the capabilities listed in deploy/README.md).
USER 0:0

# Prometheus metrics, when --metrics-addr / UPROBECTL_METRICS_ADDR is :9464.
EXPOSE 9464

ENTRYPOINT ["/usr/local/bin/uprobectl"]
# With no arguments: `attach`, its probes and options taken from the
# UPROBECTL_* environment variables (UPROBECTL_PROBES, UPROBECTL_JSON, ...).
CMD ["attach"]
