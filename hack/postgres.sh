#!/usr/bin/env bash
# Makes PostgreSQL's server binaries available for tests and prints their directory.
# Installs Debian's postgresql package when initdb is absent (idempotent), without the
# package's default cluster: tests initdb their own throwaway clusters. When run as root it
# also makes sure the postgres system user exists, as the server refuses to run as root.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_bindir() {
  local d
  if d="$(command -v initdb 2>/dev/null)" && [[ -n "$d" ]]; then
    dirname "$(readlink -f "$d")"
    return 0
  fi
  # Highest installed major version first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -rn); do
    if [[ -x "$d/initdb" && -x "$d/postgres" ]]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

install_postgres() {
  find_bindir >/dev/null && return 0
  if [[ "$(id -u)" != 0 ]]; then
    log "PostgreSQL is not installed and installing it needs root: run 'sudo $0' once"
    exit 1
  fi
  log "installing Debian's postgresql package"
  # No default cluster: nothing starts in the background.
  mkdir -p /etc/postgresql-common
  if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
    echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
}

with_lock "${TOOLS_CACHE}/postgres" install_postgres

if [[ "$(id -u)" == 0 ]] && ! id -u postgres >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

find_bindir || { log "initdb not found after installing postgresql"; exit 1; }
