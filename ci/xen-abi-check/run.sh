#!/bin/sh
# Compile xen_abi_check.c against Xen's public headers and print its output.
# Usage: ci/xen-abi-check/run.sh   (CC and KEEL_XEN_INCLUDE are honoured)
set -eu
here=$(dirname "$0")
out=${TMPDIR:-/tmp}/keel-xen-abi-check.$$
trap 'rm -f "$out"' EXIT
"${CC:-cc}" -std=gnu11 -Wall -Wextra -Werror -I "${KEEL_XEN_INCLUDE:-/usr/include}" -o "$out" "$here/xen_abi_check.c"
"$out"
