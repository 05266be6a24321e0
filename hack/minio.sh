#!/usr/bin/env bash
# Builds the pinned MinIO server into a cache outside the repository and prints the binary's path.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${TOOLS_CACHE}/minio-${MINIO_VERSION}"
bin="${dir}/minio"
if [[ ! -x "$bin" ]]; then
  build() {
    [[ -x "$bin" ]] && return 0
    log "building MinIO ${MINIO_VERSION} (about 4 minutes the first time)"
    CGO_ENABLED=0 GOBIN="$dir" go install -trimpath "github.com/minio/minio@${MINIO_VERSION}"
  }
  with_lock "$dir" build
fi
echo "$bin"
