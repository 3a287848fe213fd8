#!/usr/bin/env bash
# Install what a fresh Debian machine lacks to build and test Keel:
# the bare-metal Rust target, Bochs (VT-x emulation), QEMU (the no-VT-x path),
# GRUB's ISO tooling, Xen's public headers (the ABI cross-check), and what the
# nested backend builds its image with (a static C library for /init, lz4, xz).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "ci/install-deps.sh: not root and no passwordless sudo; run as root:" >&2
    echo "  apt-get install -y $*" >&2
    exit 1
  fi
fi

packages=(bochs bochsbios vgabios qemu-system-x86 grub-pc-bin grub-common xorriso mtools libxen-dev gcc
          libc6-dev lz4 xz-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ci/install-deps.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# rust-toolchain.toml names the target; this makes sure it is there before the first build.
rustup show active-toolchain >/dev/null
rustup target add x86_64-unknown-none >/dev/null 2>&1 || rustup target list --installed | grep -q x86_64-unknown-none
