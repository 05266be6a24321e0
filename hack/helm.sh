#!/usr/bin/env bash
# Builds the pinned Helm CLI into a cache outside the repository and prints the binary's path.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${TOOLS_CACHE}/helm-${HELM_VERSION}"
bin="${dir}/helm"
if [[ ! -x "$bin" ]]; then
  build() {
    [[ -x "$bin" ]] && return 0
    log "building Helm ${HELM_VERSION} (about 2 minutes the first time)"
    # Versions are stamped as Helm's own Makefile does: `helm version` reports the real one,
    # and `helm template`/`helm lint` assume the Kubernetes minor of the client-go Helm is
    # built with (v0.37 -> 1.37) instead of 1.20, which the chart's kubeVersion refuses.
    local client_go minor
    client_go="$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' | xargs grep -E '^\s+k8s.io/client-go ' | awk '{print $2}')"
    minor="$(echo "$client_go" | cut -d. -f2)"
    if [[ -z "$minor" ]]; then
      log "could not read the client-go version Helm ${HELM_VERSION} requires"
      return 1
    fi
    local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ldflags+=" -X ${p}.k8sVersionMajor=1 -X ${p}.k8sVersionMinor=${minor}"
    done
    CGO_ENABLED=0 GOBIN="$dir" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  }
  with_lock "$dir" build
fi
echo "$bin"
