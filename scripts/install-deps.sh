#!/usr/bin/env bash
# Debian packages a fresh machine needs to build, test and run the system.
# Idempotent and quick when everything is already there.
set -euo pipefail
PKGS=(build-essential pkg-config cmake zlib1g-dev libssl-dev libcurl4-openssl-dev
      postgresql postgresql-client debootstrap curl ca-certificates procps)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "Debian prerequisites already installed"
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "cargo-nextest missing: tests will run with cargo test"
fi
