#!/usr/bin/env bash
# Installs the Debian packages a target needs when they are missing, and starts PostgreSQL when
# it is installed but not answering: as root it does it, otherwise it says exactly what to do
# and fails. Quick when everything is already there.
set -euo pipefail

case "${1:-test}" in
  # Dovecot is a second real POP3 server; the tests start their own redis-server; PostgreSQL
  # holds the test database on 127.0.0.1:5432; Playwright drives Debian's Chromium
  # (/usr/bin/chromium) in the browser tests.
  test) wanted=(dovecot-pop3d redis-server postgresql chromium) ;;
  *) echo "usage: $0 test" >&2; exit 2 ;;
esac

is_root() { [ "$(id -u)" -eq 0 ]; }

install_missing() {
  local missing=() package
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  if ! is_root || ! command -v apt-get >/dev/null; then
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the packages' own services from starting: the tests run their own
  # Dovecot and Redis, and PostgreSQL is started below.
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

postgres_answers() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h 127.0.0.1 -p 5432 -t 3
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

start_postgres() {
  postgres_answers && return 0
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
  if ! is_root || [ -z "$version" ] || ! command -v pg_ctlcluster >/dev/null; then
    echo "PostgreSQL does not answer on 127.0.0.1:5432." >&2
    echo "Start it with: sudo pg_ctlcluster ${version:-<version>} main start" >&2
    exit 1
  fi
  echo "Starting PostgreSQL $version"
  # Without systemd (containers, CI) pg_ctlcluster must not hand over to systemctl.
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  postgres_answers || { echo "PostgreSQL $version started but does not answer" >&2; exit 1; }
}

install_missing
start_postgres
