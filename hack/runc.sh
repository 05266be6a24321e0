#!/usr/bin/env bash
# Makes runc (an OCI runtime) and umoci (unpacks an OCI image layout into a runtime bundle)
# available for the image test, and prints runc's path. Installs Debian's runc and umoci
# packages when either is missing (idempotent); nothing runs in the background.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_runc() {
  command -v runc >/dev/null && command -v umoci >/dev/null && return 0
  if [[ "$(id -u)" != 0 ]]; then
    log "runc and umoci are not installed and installing them needs root: run 'sudo $0' once"
    exit 1
  fi
  log "installing Debian's runc and umoci packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends runc umoci >&2
}

with_lock "${TOOLS_CACHE}/runc" install_runc
command -v umoci >/dev/null || { log "umoci not found after installing it"; exit 1; }
command -v runc || { log "runc not found after installing it"; exit 1; }
