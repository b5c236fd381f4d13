#!/usr/bin/env bash
# Installs the Debian packages a target needs when they are missing, unpacks Courier's POP3
# server privately, and starts PostgreSQL when it is installed but not answering: as root it does
# it, otherwise it says exactly what to do and fails. Quick when everything is already there.
set -euo pipefail

case "${1:-test}" in
  # Dovecot is a second real POP3 server; the tests start their own redis-server; PostgreSQL
  # holds the test database on 127.0.0.1:5432; Playwright drives Debian's Chromium
  # (/usr/bin/chromium) in the browser tests. GNU Mailutils' pop3d and Courier's (below) serve
  # TLS with GnuTLS, which still speaks RC4 and 3DES, and gnutls-cli is the ground truth of what
  # they accept; libidn12 and libgdbm6 are libraries the unpacked Courier binaries link to.
  test)
    wanted=(dovecot-pop3d redis-server postgresql chromium gnutls-bin mailutils-pop3d libidn12
      libgdbm6)
    # Courier's pop3d and couriertls, and the libraries that ship with them. As packages they
    # conflict with dovecot-pop3d and mailutils-pop3d, so they are unpacked, never installed.
    courier=(courier-pop courier-base courier-authlib libcourier-unicode4)
    ;;
  # The benchmarks start their own redis-server and keep their databases in PostgreSQL;
  # bench/peers.py times testssl.sh (and sslyze, which it installs into a venv of its own)
  # beside the scanner; strace is how it can show whom they connect to.
  bench)
    wanted=(redis-server postgresql testssl.sh strace)
    courier=()
    ;;
  *) echo "usage: $0 test|bench" >&2; exit 2 ;;
esac
# Where the tests look for Courier (tests/gnutls_servers.py reads the same path).
courier_dir="$(cd "$(dirname "$0")/.." && pwd)/.courier"

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

# The .debs' versions, as apt would fetch them now: a change unpacks them again.
courier_versions() {
  apt-cache policy "${courier[@]}" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}'
}

unpack_courier() {
  local stamp="$courier_dir/.packages" versions work deb
  versions=$(courier_versions)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$versions" ] \
    && [ -x "$courier_dir/usr/lib/courier/courier/courierpop3login" ]; then
    return 0
  fi
  if grep -q "(none)" <<<"$versions" || [ -z "$versions" ]; then
    echo "apt knows no candidate for some of: ${courier[*]}" >&2
    echo "Run (as root) apt-get update, then $0 again." >&2
    exit 1
  fi
  echo "Unpacking Courier's POP3 server into $courier_dir: ${courier[*]}"
  work=$(mktemp -d)
  # As root apt would hand the download to its _apt user, who cannot write the temporary folder.
  local sandbox=()
  is_root && sandbox=(-o APT::Sandbox::User=root)
  (cd "$work" && apt-get download -qq "${sandbox[@]}" "${courier[@]}") || {
    rm -rf "$work"
    echo "apt-get download ${courier[*]} failed." >&2
    exit 1
  }
  rm -rf "$courier_dir"
  mkdir -p "$courier_dir"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$courier_dir"; done
  rm -rf "$work"
  echo "$versions" >"$stamp"
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
[ ${#courier[@]} -eq 0 ] || unpack_courier
start_postgres
