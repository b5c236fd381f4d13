#!/usr/bin/env bash
# Installs the Debian packages a target needs when they are missing: with apt-get when run
# as root, otherwise it says exactly what to install and fails.
set -euo pipefail

case "${1:-test}" in
  test) wanted=(dovecot-pop3d) ;;
  *) echo "usage: $0 test" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Missing Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages' own services from starting: the tests run their own.
apt-get install -y -qq "${missing[@]}" >/dev/null
