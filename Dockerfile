# The manager image for those who build with Docker: the same contents as `make image`
# (hack/image, no Docker needed): a static Go binary on scratch, with the nonroot user's
# passwd/group entries and a sticky /tmp, running as 65532:65532. hack/image/image_test.go
# parses this file and checks the two agree (user, entrypoint, working directory, files).
#   docker build -t ghcr.io/avon-ai/data-import-operator:dev .
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
# Build with the image's Go; never download another toolchain.
ENV GOTOOLCHAIN=local
WORKDIR /workspace

# Modules in their own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/

# CGO off: the SQLite driver is pure Go, and the binary runs on an empty base. CA roots
# (x509roots/fallback) and time zones (time/tzdata) are compiled in by cmd/main.go.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /rootfs/manager ./cmd

# The rest of the file system: /etc/passwd and /etc/group, and /tmp (the default spool
# directory when nothing is mounted there).
COPY hack/image/rootfs/ /rootfs/
RUN install -d -m 1777 /rootfs/tmp

FROM scratch
COPY --from=builder /rootfs/ /
WORKDIR /
USER 65532:65532
ENTRYPOINT ["/manager"]
