#!/usr/bin/env bash
# Build GnuTLS 3.7.9 from Debian bookworm's own source (orig tarball + Debian patches) with
# --enable-ktls, as an interop peer whose gnutls-serv/gnutls-cli really call
# setsockopt(TCP_ULP, "tls") and SOL_TLS. Debian's libgnutls30 is built without kTLS: its
# tools never try TCP_ULP, even with "ktls = true" in their config file.
#
# Usage: tests/interop/build_gnutls_ktls.sh [--force] [--verify]
#   --force   rebuild even when a complete build is present (verified downloads are reused)
#   --verify  run the kTLS check again on the build that is present
# Environment:
#   ULPO_GNUTLS_KTLS_DIR     cache dir (default /var/cache/ulpo/gnutls-ktls as root, else
#                            ~/.cache/ulpo/gnutls-ktls)
#   ULPO_GNUTLS_DEB_VERSION  Debian version to build (default: the one bookworm ships now,
#                            which must be 3.7.9-*)
#   ULPO_DEBIAN_MIRROR       default http://deb.debian.org/debian
#   ULPO_GNUTLS_KEEP_BUILD=1 keep the configured source tree (about 150 MB) after the install
#
# Progress goes to stderr. At the end stdout gets shell-assignable lines, so a caller can do
#   eval "$(tests/interop/build_gnutls_ktls.sh)"
# and then run "$GNUTLS_KTLS_SERV" with LD_LIBRARY_PATH="$GNUTLS_KTLS_LIBDIR" and
# GNUTLS_SYSTEM_PRIORITY_FILE="$GNUTLS_KTLS_CFG" (the file that turns kTLS on).
set -euo pipefail

# Root (CI) keeps the build in /var/cache; anyone else in their own cache directory.
if [[ -z ${ULPO_GNUTLS_KTLS_DIR:-} && $(id -u) != 0 && ! -w /var/cache/ulpo/gnutls-ktls ]]; then
	ULPO_GNUTLS_KTLS_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/ulpo/gnutls-ktls
fi
DIR=${ULPO_GNUTLS_KTLS_DIR:-/var/cache/ulpo/gnutls-ktls}
[[ $DIR == /* ]] || DIR=$PWD/$DIR # configure --prefix must be absolute
MIRROR=${ULPO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
UPSTREAM=3.7.9
JOBS=$(nproc)

DL=$DIR/dl               # verified downloads, kept across --force
SRC=$DIR/src             # unpacked, patched, configured tree (removed after a good install)
PREFIX=$DIR/prefix       # the install: bin/gnutls-serv, bin/gnutls-cli, lib/libgnutls.so*
LOGS=$DIR/logs
SERV=$PREFIX/bin/gnutls-serv
CLI=$PREFIX/bin/gnutls-cli
LIBDIR=$PREFIX/lib
CFG=$PREFIX/etc/ktls.cfg
STAMP=$PREFIX/.ulpo-build-complete

# Only the library and two tools are needed: everything else is off, to keep the build short.
# --disable-gcc-warnings matters most: by default GnuTLS compiles every file with -fanalyzer
# and ~60 warning flags, which makes the library build about 4 times slower.
# TPM, compression and libdane are off too (Debian's libgnutls30 has none of them either).
# p11-kit stays on: without it the library lacks the gnutls_pkcs11_* symbols, and a program
# linked against Debian's libgnutls30 (e.g. /usr/bin/gnutls-serv) dies on a symbol lookup
# error if LD_LIBRARY_PATH points it at this one; with it, this is a drop-in libgnutls.so.30.
# The system priority file stays Debian's path; callers point GNUTLS_SYSTEM_PRIORITY_FILE at
# $CFG to turn kTLS on.
CONFIGURE_FLAGS=(
	--prefix="$PREFIX"
	--enable-ktls
	--disable-gcc-warnings
	--disable-doc --disable-manpages --disable-gtk-doc
	--disable-tests --disable-full-test-suite --disable-valgrind-tests
	--disable-guile --disable-cxx --disable-libdane --disable-nls
	--without-tpm --without-tpm2
	--without-zlib --without-brotli --without-zstd
	--with-system-priority-file=/etc/gnutls/config
	--with-default-trust-store-file=/etc/ssl/certs/ca-certificates.crt
	--disable-dependency-tracking
)
# A change here or in the flags makes the next run rebuild.
BUILD_ID="rev=1 upstream=$UPSTREAM flags=${CONFIGURE_FLAGS[*]}"

# autoconf..autopoint: the Debian patches need the build system regenerated (see below).
BUILD_PKGS=(gcc libc6-dev make pkg-config autoconf automake libtool autopoint patch xz-utils curl
	gpgv debian-archive-keyring linux-libc-dev
	nettle-dev libgmp-dev libtasn1-6-dev libunistring-dev libidn2-dev libp11-kit-dev)
VERIFY_PKGS=(openssl strace iproute2)

T0=$SECONDS
log() { printf '[build_gnutls_ktls +%ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf 'build_gnutls_ktls: ERROR: %s\n' "$*" >&2; exit 1; }
# Run a noisy step with its output in a log file; show the log's tail if it fails.
run_logged() {
	local name=$1; shift
	if ! "$@" >"$LOGS/$name.log" 2>&1; then
		tail -n 40 "$LOGS/$name.log" >&2
		die "$name failed (full log: $LOGS/$name.log)"
	fi
}

print_paths() {
	cat <<-EOF
	GNUTLS_KTLS_SERV=$SERV
	GNUTLS_KTLS_CLI=$CLI
	GNUTLS_KTLS_LIBDIR=$LIBDIR
	GNUTLS_KTLS_CFG=$CFG
	EOF
}

build_complete() {
	[[ -f $STAMP && "$(head -n 1 "$STAMP")" == "$BUILD_ID" ]] || return 1
	[[ -x $SERV && -x $CLI && -e $LIBDIR/libgnutls.so.30 && -f $CFG ]] || return 1
	# An explicitly requested Debian version must be the one that was built.
	[[ -z ${ULPO_GNUTLS_DEB_VERSION:-} ]] ||
		[[ "$(sed -n 2p "$STAMP")" == "debian=$ULPO_GNUTLS_DEB_VERSION" ]]
}

ensure_packages() { # package...
	local missing="" p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	[[ -z $missing ]] && return 0
	if [[ $(id -u) != 0 ]]; then
		die "missing packages:$missing (run as root, or: sudo apt-get install$missing)"
	fi
	log "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	run_logged apt-install sh -c "apt-get -q update && apt-get -q install -y --no-install-recommends$missing"
}

fetch() { # url dest: download to dest (atomically)
	curl -fsSL --retry 3 -o "$2.part" "$1" || die "download failed: $1"
	mv "$2.part" "$2"
}

sha_ok() { # file sha256
	[[ -f $1 ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

# Trust chain: InRelease is signed by Debian's archive keys (debian-archive-keyring, which
# apt itself trusts) -> it lists the sha256 of main/source/Sources.xz -> which lists the
# sha256 of the orig and debian tarballs of gnutls28.
download_and_verify() {
	mkdir -p "$DL"
	log "fetching bookworm InRelease and checking its signature"
	fetch "$MIRROR/dists/bookworm/InRelease" "$DL/InRelease"
	rm -f "$DL/Release"
	gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg \
		--output "$DL/Release" "$DL/InRelease" 2>"$LOGS/gpgv.log" ||
		{ cat "$LOGS/gpgv.log" >&2; die "bad signature on $MIRROR/dists/bookworm/InRelease"; }
	local sources_sha
	sources_sha=$(awk '/^SHA256:/ {s = 1; next} /^[^ ]/ {s = 0}
		s && $3 == "main/source/Sources.xz" {print $1}' "$DL/Release")
	[[ $sources_sha =~ ^[0-9a-f]{64}$ ]] || die "no sha256 for main/source/Sources.xz in Release"
	if ! sha_ok "$DL/Sources.xz" "$sources_sha"; then
		log "fetching main/source/Sources.xz"
		fetch "$MIRROR/dists/bookworm/main/source/Sources.xz" "$DL/Sources.xz"
		sha_ok "$DL/Sources.xz" "$sources_sha" || die "Sources.xz does not match the signed Release"
	fi

	local stanzas versions
	stanzas=$(xz -dc "$DL/Sources.xz" | awk 'BEGIN {RS = ""} /^Package: gnutls28\n/ {print; print ""}')
	versions=$(sed -n 's/^Version: //p' <<<"$stanzas" | xargs)
	[[ -n $versions ]] || die "no gnutls28 source package in bookworm's Sources.xz"
	if [[ -n ${ULPO_GNUTLS_DEB_VERSION:-} ]]; then
		DEB_VERSION=$ULPO_GNUTLS_DEB_VERSION
		[[ " $versions " == *" $DEB_VERSION "* ]] ||
			die "bookworm does not list gnutls28 $DEB_VERSION (it has: $versions); unset ULPO_GNUTLS_DEB_VERSION"
	else
		DEB_VERSION=${versions%% *}
	fi
	[[ $DEB_VERSION == "$UPSTREAM"-* ]] ||
		die "bookworm's gnutls28 is now $DEB_VERSION, not $UPSTREAM-*: update UPSTREAM and re-check the flags"
	local stanza
	stanza=$(awk -v RS= -v v="$DEB_VERSION" 'index($0, "\nVersion: " v "\n")' <<<"$stanzas")

	ORIG=gnutls28_$UPSTREAM.orig.tar.xz
	DEBTAR=gnutls28_$DEB_VERSION.debian.tar.xz
	local f sha
	for f in "$ORIG" "$DEBTAR"; do
		sha=$(awk -v f="$f" '$3 == f && length($1) == 64 {print $1}' <<<"$stanza")
		[[ $sha =~ ^[0-9a-f]{64}$ ]] || die "no sha256 for $f in Sources.xz"
		if sha_ok "$DL/$f" "$sha"; then
			log "$f already downloaded, sha256 ok"
		else
			log "fetching $f"
			fetch "$MIRROR/pool/main/g/gnutls28/$f" "$DL/$f"
			sha_ok "$DL/$f" "$sha" || die "$f: sha256 differs from Sources.xz ($sha)"
			log "$f: sha256 $sha ok"
		fi
	done
}

unpack_and_patch() {
	log "unpacking gnutls $UPSTREAM and Debian's $DEB_VERSION patches"
	rm -rf "$SRC"
	mkdir -p "$SRC"
	tar -xJf "$DL/$ORIG" -C "$SRC"
	TREE=$SRC/gnutls-$UPSTREAM
	tar -xJf "$DL/$DEBTAR" -C "$TREE"
	local n=0 name opts
	while read -r name opts; do
		[[ -z $name || $name == \#* ]] && continue
		# shellcheck disable=SC2086 # opts is a series line's option list, e.g. "-p1"
		patch -d "$TREE" ${opts:--p1} --batch --forward --no-backup-if-mismatch -s \
			<"$TREE/debian/patches/$name" >"$LOGS/patch.log" 2>&1 ||
			{ cat "$LOGS/patch.log" >&2; die "Debian patch $name does not apply"; }
		n=$((n + 1))
	done <"$TREE/debian/patches/series"
	log "applied $n Debian patches"
	# The patches touch configure.ac, gl/Makefile.am and m4/ (a gnulib module is added), so
	# the build system is regenerated, as debian/rules does: drop gettext-0.20 macros that
	# autopoint replaces, and skip gtkdocize (no docs).
	log "autoreconf (the patches change configure.ac and gl/Makefile.am)"
	(cd "$TREE" && { grep -rl gettext-0.20 m4/ || true; } | xargs -r rm -f &&
		run_logged autoreconf env GTKDOCIZE=true autoreconf -f -i)
}

build_and_install() {
	log "configure --enable-ktls (about 1.5 min)"
	(cd "$TREE" && run_logged configure ./configure "${CONFIGURE_FLAGS[@]}")
	grep -q '^#define ENABLE_KTLS 1' "$TREE/config.h" || die "configure did not enable kTLS"
	# Only what gnutls-serv and gnutls-cli need: gnulib, the library, the tools' gnulib and the
	# two tools (the other tools, libdane, tests, docs and po are never entered).
	log "make -j$JOBS: gl lib (about 2 min)"
	run_logged make-gl make -C "$TREE/gl" -j"$JOBS"
	run_logged make-lib make -C "$TREE/lib" -j"$JOBS"
	log "make -j$JOBS: src/gnutls-serv src/gnutls-cli"
	run_logged make-src-gl make -C "$TREE/src/gl" -j"$JOBS"
	run_logged make-src make -C "$TREE/src" -j"$JOBS" gnutls-serv gnutls-cli
	log "installing into $PREFIX"
	rm -rf "$PREFIX"
	run_logged install-lib make -C "$TREE/lib" install
	run_logged install-src make -C "$TREE/src" install-binPROGRAMS bin_PROGRAMS="gnutls-serv gnutls-cli"
	mkdir -p "$(dirname "$CFG")"
	printf '[global]\nktls = true\n' >"$CFG"
}

# Run the built gnutls-serv and gnutls-cli against each other under strace, with kTLS turned
# on, and require both to attempt setsockopt(SOL_TCP, TCP_ULP, "tls"). On a kernel without
# the tls module that fails with ENOENT and GnuTLS falls back to its own record layer, so the
# echo must still come back.
VERIFY_WORK=""
SERV_PIDFILE=""
cleanup() {
	if [[ -n $SERV_PIDFILE && -s $SERV_PIDFILE ]]; then
		kill "$(cat "$SERV_PIDFILE")" 2>/dev/null || true
	fi
	[[ -z $VERIFY_WORK ]] || rm -rf "$VERIFY_WORK"
}
trap cleanup EXIT

verify_ktls() {
	log "verifying kTLS: gnutls-serv <-> gnutls-cli under strace -e trace=setsockopt"
	VERIFY_WORK=$(mktemp -d)
	local w=$VERIFY_WORK
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=localhost -keyout "$w/key.pem" -out "$w/cert.pem" >"$w/openssl.log" 2>&1 ||
		{ cat "$w/openssl.log" >&2; die "openssl could not make a test certificate"; }
	export GNUTLS_SYSTEM_PRIORITY_FILE=$CFG
	export LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	SERV_PIDFILE=$w/serv.pid

	local port spid ready=0
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		rm -f "$SERV_PIDFILE"
		# sh records its pid, then execs gnutls-serv under that pid: the pid to stop it by
		# (strace itself ignores SIGTERM while its tracee runs).
		# shellcheck disable=SC2016 # $$, $0 and $@ are for the inner sh
		strace -f -qq -o "$w/serv.strace" -e trace=setsockopt \
			sh -c 'echo $$ >"$0"; exec "$@"' "$SERV_PIDFILE" \
			"$SERV" --echo -p "$port" --x509certfile "$w/cert.pem" --x509keyfile "$w/key.pem" \
			>"$w/serv.log" 2>&1 &
		spid=$!
		for _ in $(seq 100); do
			if [[ -n $(ss -Hltn "sport = :$port") ]]; then ready=1; break; fi
			kill -0 "$spid" 2>/dev/null || break # exited: port taken, or strace not allowed
			sleep 0.1
		done
		((ready)) && break
		if [[ -s $SERV_PIDFILE ]]; then kill "$(cat "$SERV_PIDFILE")" 2>/dev/null || true; fi
		wait "$spid" 2>/dev/null || true
	done
	((ready)) || { cat "$w/serv.log" >&2; die "gnutls-serv (under strace) did not start listening"; }

	printf 'ulpo-ktls-probe\n' | timeout 30 strace -f -qq -o "$w/cli.strace" -e trace=setsockopt \
		"$CLI" --insecure -p "$port" 127.0.0.1 >"$w/cli.log" 2>&1 ||
		{ cat "$w/cli.log" >&2; die "gnutls-cli could not talk to gnutls-serv"; }
	kill "$(cat "$SERV_PIDFILE")" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	SERV_PIDFILE=""

	grep -q '^ulpo-ktls-probe' "$w/cli.log" ||
		{ cat "$w/cli.log" >&2; die "the echo did not come back through gnutls-serv"; }
	# strace 6.1 shows the optval "tls\0" as the int [7564404]; newer ones may print "tls".
	local ulp='setsockopt\([0-9]+, SOL_TCP, TCP_ULP, ("tls"|\[7564404\])'
	local side line
	for side in serv cli; do
		line=$(grep -m1 -E "$ulp" "$w/$side.strace") ||
			{ cat "$w/$side.strace" >&2; die "gnutls-$side never tried setsockopt(TCP_ULP, \"tls\"): the library has no kTLS"; }
		log "gnutls-$side: ${line#* }"
		case $line in
		*"= 0") log "  kernel accepted TCP_ULP: kTLS is available on this kernel" ;;
		*ENOENT*) log "  ENOENT: this kernel has no tls module (expected here); GnuTLS fell back to userspace" ;;
		esac
	done
	log "echo through the fallback path ok: $(grep -m1 '^- Description' "$w/serv.log" || true)"
	log "kTLS check passed"
}

main() {
	local force=0 verify_only=0 arg
	for arg in "$@"; do
		case $arg in
		--force) force=1 ;;
		--verify) verify_only=1 ;;
		*) die "unknown argument: $arg (use --force or --verify)" ;;
		esac
	done

	if ((!force)) && build_complete; then
		if ((verify_only)); then
			ensure_packages "${VERIFY_PKGS[@]}"
			verify_ktls
		else
			log "complete build present in $PREFIX ($(sed -n 2p "$STAMP")); nothing to do"
		fi
		print_paths
		exit 0
	fi
	((verify_only)) && die "no complete build in $PREFIX to verify; run without --verify first"

	mkdir -p "$DIR" 2>/dev/null || die "cannot create $DIR (set ULPO_GNUTLS_KTLS_DIR to a writable dir)"
	[[ -w $DIR ]] || die "$DIR is not writable (set ULPO_GNUTLS_KTLS_DIR to a writable dir)"
	# Two runs at once (e.g. two CI jobs) must not build into the same tree.
	exec 9>"$DIR/.lock"
	flock 9
	if ((!force)) && build_complete; then
		log "another run finished the build meanwhile"
		print_paths
		exit 0
	fi
	mkdir -p "$LOGS"
	log "building GnuTLS $UPSTREAM with kTLS into $DIR ($JOBS jobs)"

	ensure_packages "${BUILD_PKGS[@]}" "${VERIFY_PKGS[@]}"
	download_and_verify
	rm -f "$STAMP"
	unpack_and_patch
	build_and_install
	verify_ktls
	printf '%s\ndebian=%s\n' "$BUILD_ID" "$DEB_VERSION" >"$STAMP"
	if [[ ${ULPO_GNUTLS_KEEP_BUILD:-0} != 1 ]]; then
		rm -rf "$SRC"
	fi
	log "done: GnuTLS $DEB_VERSION with kTLS built in $((SECONDS - T0)) s"
	print_paths
}

main "$@"
