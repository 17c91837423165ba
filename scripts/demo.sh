#!/bin/sh
# demo.sh - quick start, command 1: install what ulpo needs (when run as root), build,
# and run `ulpo demo`: a TLS session with a real OpenSSL/GnuTLS peer whose records are
# carried by ulpo, then the counters. Extra arguments go to `ulpo demo`.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
	scripts/setup-deps.sh
fi
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
exec ./build/tools/ulpo demo "$@"
