#!/usr/bin/env bash
# Installs the Debian packages a target needs when they are missing, unpacks Courier's POP3
# server and Postfix privately, and starts PostgreSQL when it is installed but not answering: as
# root it does it, otherwise it says exactly what to do and fails. Quick when everything is
# already there.
set -euo pipefail

# What pip needs to build python-ldap (LDAP sign-in, a runtime requirement with no wheel): a
# compiler, OpenLDAP's and Cyrus SASL's headers, and Python's unless the interpreter brings
# its own (pyenv's and python.org's do; Debian's are in python3-dev).
build=(gcc libc6-dev libldap2-dev libsasl2-dev)
interpreter="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"
[ -x "$interpreter" ] || interpreter=python3
headers=$("$interpreter" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
[ -n "$headers" ] && [ -f "$headers/Python.h" ] || build+=(python3-dev)
postgres=yes
# What WeasyPrint renders the PDF reports with (the web app and workers make them, so `make run`
# needs them too): Pango, HarfBuzz's subsetter, and DejaVu, the fonts the report's styles name.
pdf=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)

case "${1:-test}" in
  # Before `pip install -r requirements.txt` (make run, make deps): the build of python-ldap.
  build)
    wanted=("${build[@]}" "${pdf[@]}")
    courier=()
    postfix=()
    postgres=no
    ;;
  # Dovecot is a second real POP3 server; the tests start their own redis-server; PostgreSQL
  # holds the test database on 127.0.0.1:5432; Playwright drives Debian's Chromium
  # (/usr/bin/chromium) in the browser tests. GNU Mailutils' pop3d and Courier's (below) serve
  # TLS with GnuTLS, which still speaks RC4 and 3DES, and gnutls-cli is the ground truth of what
  # they accept; libidn12 and libgdbm6 are libraries the unpacked Courier binaries link to.
  # Dovecot's imapd and submissiond and Mailutils' imap4d are the IMAP and SMTP submission
  # servers of tests/imap_servers.py and tests/submission_servers.py; libdb5.3, libicu72,
  # libnsl2 and libsasl2-2 are what the unpacked Postfix links to, and libsasl2-modules has the
  # Cyrus SASL NTLM plugin of the Postfix that discloses its host name by NTLM. slapd (with
  # ldap-utils' slapadd) is the OpenLDAP directory the single sign-on tests start privately.
  # openssl's `ocsp` responder and `s_server` are the revocation tests' CA and stapling server;
  # poppler-utils' pdftoppm and pdftotext read the PDF reports back (a blank page is caught).
  test)
    wanted=(dovecot-pop3d dovecot-imapd dovecot-submissiond redis-server postgresql chromium
      gnutls-bin mailutils-pop3d mailutils-imap4d libidn12 libgdbm6 libdb5.3 libicu72 libnsl2
      libsasl2-2 libsasl2-modules slapd ldap-utils openssl poppler-utils "${build[@]}" "${pdf[@]}")
    # Courier's pop3d and couriertls, and the libraries that ship with them. As packages they
    # conflict with dovecot-pop3d and mailutils-pop3d, so they are unpacked, never installed.
    courier=(courier-pop courier-base courier-authlib libcourier-unicode4)
    # Postfix as a package would become this machine's MTA (replacing exim4, say, and adding
    # /usr/sbin/sendmail); the tests run it from an unpacked copy instead.
    postfix=(postfix)
    ;;
  # The benchmarks start their own redis-server and keep their databases in PostgreSQL;
  # bench/peers.py times testssl.sh (and sslyze, which it installs into a venv of its own)
  # beside the scanner; strace is how it can show whom they connect to.
  bench)
    wanted=(redis-server postgresql testssl.sh strace "${pdf[@]}")
    courier=()
    postfix=()
    ;;
  *) echo "usage: $0 test|bench|build" >&2; exit 2 ;;
esac
# Where the tests look for Courier and Postfix (tests/gnutls_servers.py and
# tests/submission_servers.py read the same paths).
repository="$(cd "$(dirname "$0")/.." && pwd)"

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
  forbid_service_starts
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A policy-rc.d that answers 101 ("action forbidden") keeps the packages' own services from
# starting: the tests run their own Dovecot and Redis, and PostgreSQL is started below. One
# already there (containers have one) is left as it is; ours is removed when the script ends.
forbid_service_starts() {
  local policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] && return 0
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
}

# The .debs' versions, as apt would fetch them now: a change unpacks them again.
candidate_versions() {
  apt-cache policy "$@" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}'
}

# unpack_privately DIR WITNESS WHAT PACKAGE...: the packages' files under DIR, never installed,
# unless DIR already holds these versions and its WITNESS file (a path inside DIR).
unpack_privately() {
  local dir=$1 witness=$2 what=$3
  shift 3
  local stamp="$dir/.packages" versions work deb
  versions=$(candidate_versions "$@")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$versions" ] && [ -x "$dir/$witness" ]; then
    return 0
  fi
  if grep -q "(none)" <<<"$versions" || [ -z "$versions" ]; then
    echo "apt knows no candidate for some of: $*" >&2
    echo "Run (as root) apt-get update, then $0 again." >&2
    exit 1
  fi
  echo "Unpacking $what into $dir: $*"
  work=$(mktemp -d)
  # As root apt would hand the download to its _apt user, who cannot write the temporary folder.
  local sandbox=()
  is_root && sandbox=(-o APT::Sandbox::User=root)
  (cd "$work" && apt-get download -qq "${sandbox[@]}" "$@") || {
    rm -rf "$work"
    echo "apt-get download $* failed." >&2
    exit 1
  }
  rm -rf "$dir"
  mkdir -p "$dir"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
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
[ ${#courier[@]} -eq 0 ] || unpack_privately "$repository/.courier" \
  usr/lib/courier/courier/courierpop3login "Courier's POP3 server" "${courier[@]}"
[ ${#postfix[@]} -eq 0 ] || unpack_privately "$repository/.postfix" \
  usr/lib/postfix/sbin/smtpd Postfix "${postfix[@]}"
[ "$postgres" = no ] || start_postgres
