# The manager image: a static Go binary on distroless, running as an unprivileged user.
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

# CGO off: the SQLite driver is pure Go, and the binary must run on distroless/static.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o manager ./cmd

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]
