# Shared helpers for hack/ scripts. Source it; it defines no side effects.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${HACK_DIR}/versions.env"
export GOTOOLCHAIN=local
GOARCH_HOST="$(go env GOARCH)"
GOOS_HOST="$(go env GOOS)"
# Built tools live outside the repository so a fresh clone rebuilds them and git never sees them.
TOOLS_CACHE="${DATA_IMPORT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/data-import-operator}"
ENVTEST_ASSETS_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest/k8s/${K8S_VERSION}-${GOOS_HOST}-${GOARCH_HOST}"

log() { printf '[hack] %s\n' "$*" >&2; }

# with_lock DIR CMD...: serialise concurrent builds of the same tool (parallel test packages).
with_lock() {
  local dir="$1"; shift
  mkdir -p "$dir"
  exec {lockfd}>"$dir/.lock"
  flock "$lockfd"
  "$@"
  flock -u "$lockfd"
}
