#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module proxy into the directory
# setup-envtest would use, and prints that directory. Idempotent: a second run costs a second.
# When KUBEBUILDER_ASSETS already points at a directory holding the binaries, it is used as is.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi

build_kube() {
  local stamp="${ENVTEST_ASSETS_DIR}/.built-k8s-kcm-${K8S_VERSION}"
  [[ -f "$stamp" && -x "${ENVTEST_ASSETS_DIR}/kube-apiserver" && -x "${ENVTEST_ASSETS_DIR}/kubectl" && -x "${ENVTEST_ASSETS_DIR}/kube-controller-manager" ]] && return 0
  local mod="${TOOLS_CACHE}/build/kubernetes-${K8S_VERSION}"
  mkdir -p "$mod" "${ENVTEST_ASSETS_DIR}"
  log "building kube-apiserver, kube-controller-manager and kubectl v${K8S_VERSION} (about 6 minutes the first time)"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module local/kubernetes-tools"
    echo "go 1.26"
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    # k8s.io/kubernetes requires its staging modules at v0.0.0; point each at its published tag.
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="${K8S_VERSION#1.}" '{print "replace " $1 " => " $1 " v0." v}'
  } > "$mod/go.mod"
  local minor ldflags=""
  minor="$(echo "${K8S_VERSION}" | cut -d. -f2)"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${p}.gitVersion=v${K8S_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor} -X ${p}.gitTreeState=clean"
  done
  (cd "$mod" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w ${ldflags}" \
      -o "${ENVTEST_ASSETS_DIR}/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl \
      k8s.io/kubernetes/cmd/kube-controller-manager)
  touch "$stamp"
}

build_etcd() {
  local stamp="${ENVTEST_ASSETS_DIR}/.built-etcd-${ETCD_VERSION}"
  [[ -f "$stamp" && -x "${ENVTEST_ASSETS_DIR}/etcd" ]] && return 0
  local mod="${TOOLS_CACHE}/build/etcd-${ETCD_VERSION}"
  mkdir -p "$mod" "${ENVTEST_ASSETS_DIR}"
  log "building etcd v${ETCD_VERSION}"
  {
    echo "module local/etcd-tools"
    echo "go 1.26"
    echo "require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}"
    for m in api client/pkg client pkg; do
      echo "replace go.etcd.io/etcd/${m}/v3 => go.etcd.io/etcd/${m}/v3 v${ETCD_VERSION}"
    done
  } > "$mod/go.mod"
  (cd "$mod" && CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" \
      -o "${ENVTEST_ASSETS_DIR}/etcd" go.etcd.io/etcd/server/v3)
  touch "$stamp"
}

with_lock "${ENVTEST_ASSETS_DIR}" bash -c "$(declare -f log build_kube build_etcd); $(declare -p K8S_VERSION ETCD_VERSION TOOLS_CACHE ENVTEST_ASSETS_DIR); set -euo pipefail; build_etcd; build_kube"
echo "${ENVTEST_ASSETS_DIR}"
