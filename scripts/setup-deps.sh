#!/bin/bash
# Install what building and testing ulpo needs on a fresh Debian 12: the toolchain (gcc,
# clang with its sanitizer and libFuzzer runtimes), the crypto and CRC libraries, the
# interop peers (GnuTLS, OpenSSL, curl), the AEAD test vectors, the Linux VM peer, tshark
# (its NVMe/TCP dissector reads our captures), valgrind (callgrind counts for bench/), and
# what building GnuTLS from Debian's source needs (scripts/test.sh builds a GnuTLS with
# kTLS for the tests of unmodified programs: Debian's has none).
# Idempotent: installs only what is missing, and says nothing more when nothing is.
set -eu

PACKAGES="
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev python3
	libssl-dev libgcrypt20-dev libisal-dev
	libgnutls28-dev gnutls-bin openssl curl strace iproute2
	make autoconf automake libtool autopoint patch xz-utils gpgv debian-archive-keyring
	linux-libc-dev nettle-dev libgmp-dev libtasn1-6-dev libunistring-dev libidn2-dev
	libp11-kit-dev
	python3-cryptography-vectors
	linux-image-amd64 qemu-system-x86 busybox-static cpio kmod
	tshark valgrind
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
if [ -z "$missing" ]; then
	echo "setup-deps: all packages present"
else
	echo "setup-deps: installing$missing"
	log=$(mktemp)
	# apt is verbose even with -q; keep its log for when it fails.
	export DEBIAN_FRONTEND=noninteractive
	if ! { $SUDO apt-get -q update && \
	       $SUDO apt-get -q install -y --no-install-recommends $missing; } >"$log" 2>&1; then
		tail -n 40 "$log"
		rm -f "$log"
		echo "setup-deps: apt-get failed" >&2
		exit 1
	fi
	rm -f "$log"
	echo "setup-deps: done"
fi
