#!/bin/sh
# run_vm.sh - the 'vm' test suite: boot Debian's Linux 6.1 in QEMU once (peers/linux-vm/vm.sh)
# and run, against the kernel's own kTLS, (A) ktls_peer: kernel <-> ulpo transfers and
# ciphertext identity per (version, cipher), (B) tests/tls/test_tls.c built for the kernel.
# (C) tests/preload/ktls_prog.c, one kTLS program: static in the guest on the kernel's kTLS,
# dynamic on the host under `ulpo run`; every check must agree.
# (D) tests/vm/device_prog.c: a static ulpo program in the guest, ULPO_DEVICE=auto, with tls.ko
# (the kernel device carries it) and with tls.ko removed (ulpo's sw device): same ciphertext.
# (E) tests/nvme/nvme_rw.c: the ulpo NVMe/TCP host against the guest's nvmet-tcp target.
# (F) the guest's nvme-tcp initiator against `ulpo nvme target` on the host (digests on):
# what it writes, it and ulpo's host read back with the same checksum.
# usage: run_vm.sh VM_SH HOST_PEER GUEST_PEER GUEST_TEST_TLS [GUEST_KTLS_PROG HOST_KTLS_PROG ULPO
#        GUEST_DEVICE_PROG NVME_RW]
# env: ULPO_VM_SH overrides VM_SH; VM_SEED (default: random, printed); VM_KIB: KiB per
#      direction and cell (default 16384); VM_PARTS (default "A B C D E F"), VM_KEEP=1 keeps the work directory.
# Exit 77 only when qemu or the kernel image is missing.
set -u
VM_SH=${ULPO_VM_SH:-$1} HOST_PEER=$2 GUEST_PEER=$3 GUEST_TEST=$4
GUEST_PROG=${5:-} HOST_PROG=${6:-} ULPO=${7:-} GUEST_DEV=${8:-} NVME_RW=${9:-}
K=${K:-$(ls /lib/modules 2>/dev/null | sort -V | tail -n 1)}
SEED=${VM_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
KIB=${VM_KIB:-16384}
PARTS=${VM_PARTS:-A B C D E F}
T0=$(date +%s)

command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
[ -n "$K" ] && [ -f "/boot/vmlinuz-$K" ] || { echo "SKIP: no kernel image /boot/vmlinuz-$K"; exit 77; }
# The peer's boot script sits beside the project (../shared); a clone elsewhere on this
# machine finds it at the workplace's fixed path.
[ -f "$VM_SH" ] || VM_SH=/work/shared/peers/linux-vm/vm.sh
[ -f "$VM_SH" ] || { echo "SKIP: the Linux VM peer (peers/linux-vm/vm.sh) is not on this machine"; exit 77; }

# Three free host ports: nvmet forward (unused here), the guest shell, and our listener.
set -- $(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
PORT=$1 CPORT=$2 HPORT=$3
W=$(mktemp -d /tmp/ulpo-vm.XXXXXX)
export K W PORT CPORT
echo "vm: kernel $K, work dir $W, ports $PORT/$CPORT/$HPORT, seed $SEED, $KIB KiB per cell"

cleanup() {
	[ -n "${HPID:-}" ] && kill "$HPID" 2>/dev/null
	sh "$VM_SH" stop >/dev/null 2>&1
	[ "${VM_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

EXTRA_BINS="$GUEST_PEER $GUEST_TEST $GUEST_PROG $GUEST_DEV" sh "$VM_SH" build >"$W/build.log" 2>&1 ||
	{ cat "$W/build.log"; echo "FAIL: vm.sh build"; exit 1; }
sh "$VM_SH" start || { echo "FAIL: vm.sh start"; exit 1; }

# Run a command in the guest through its root shell; longer timeout than 'vm.sh exec'.
gexec() {
	python3 -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),timeout=float(sys.argv[3]))
s.sendall((sys.argv[2]+"\nexit\n").encode())
while True:
    d=s.recv(65536)
    if not d: break
    sys.stdout.write(d.decode(errors="replace")); sys.stdout.flush()' "$CPORT" "$1" "${2:-600}"
}

FAILED=0
GP=$(basename "$GUEST_PEER") GT=$(basename "$GUEST_TEST")

case " $PARTS " in *" A "*)
	echo "== A: kernel kTLS in the guest <-> ulpo on the host (every cell: data verified byte for byte)"
	TA=$(date +%s)
	"$HOST_PEER" host "$HPORT" "$SEED" "$KIB" >"$W/host.log" 2>&1 &
	HPID=$!
	i=0
	until grep -q listening "$W/host.log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$HPID" 2>/dev/null; then
			cat "$W/host.log"; echo "FAIL: host peer did not start"; exit 1
		fi
		sleep 0.1
	done
	gexec "/bin/$GP guest 10.0.2.2 $HPORT $SEED $KIB; echo guest-exit=\$?" 300 >"$W/guest.log"
	wait "$HPID"
	HRC=$?
	HPID=
	grep -v '^listening' "$W/host.log"
	# The host prints every cell (with the guest's verdict); show the guest's failures too.
	grep '^FAIL' "$W/guest.log" | sed 's/^/guest: /'
	grep -q 'guest-exit=0' "$W/guest.log" || { echo "guest side failed:"; cat "$W/guest.log"; FAILED=1; }
	[ "$HRC" = 0 ] || FAILED=1
	echo "A took $(($(date +%s) - TA)) s"
	;;
esac

case " $PARTS " in *" B "*)
	echo "== B: tests/tls/test_tls.c in the guest against kernel kTLS (-DTEST_KERNEL -DTEST_KERNEL_61)"
	TB=$(date +%s)
	# One run per variant, each under a timeout, so a hang costs one variant, not the rest.
	gexec "for v in 1_2-AES_GCM_128 1_2-AES_GCM_256 1_2-AES_CCM_128 1_2-CHACHA20_POLY1305 \
		1_3-AES_GCM_128 1_3-AES_GCM_256 1_3-AES_CCM_128 1_3-CHACHA20_POLY1305 fd_reuse; do
		timeout 240 /bin/$GT \$v >/tmp/t.log 2>&1; rc=\$?
		grep -v '^seed\|^SKIP' /tmp/t.log; echo \"test_tls-exit \$v \$rc\"
	done" 300 >"$W/test_tls.log"
	grep -v '^test_tls-exit\|passed, .* failed' "$W/test_tls.log"
	P=$(awk '/ passed, .* failed/ { p += $1 } END { print p + 0 }' "$W/test_tls.log")
	F=$(awk '/ passed, .* failed/ { f += $3 } END { print f + 0 }' "$W/test_tls.log")
	N=$(grep -c 'passed, .* failed' "$W/test_tls.log")
	echo "test_tls in the guest: $P passed, $F failed ($N of 9 runs finished; SM4/ARIA are not in 6.1)"
	[ "$F" = 0 ] && [ "$N" = 9 ] || FAILED=1
	echo "B took $(($(date +%s) - TB)) s"
	;;
esac

case " $PARTS " in *" C "*)
	[ -n "$GUEST_PROG" ] || { echo "FAIL: part C needs GUEST_KTLS_PROG HOST_KTLS_PROG ULPO"; exit 1; }
	echo "== C: tests/preload/ktls_prog.c: kernel kTLS in the guest vs ulpo run on the host"
	TC=$(date +%s)
	GK=$(basename "$GUEST_PROG")
	gexec "timeout 120 /bin/$GK; echo prog-exit=\$?" 150 | tr -d '\r' >"$W/prog.guest"
	"$ULPO" run -- "$HOST_PROG" >"$W/prog.host" 2>&1
	HRC=$?
	# Same checks, same verdicts; a check ulpo reports as a known gap (SKIP) is listed.
	python3 - "$W/prog.guest" "$W/prog.host" <<'PY' || FAILED=1
import re, sys
def checks(path):
    out = {}
    for line in open(path, errors="replace"):
        m = re.match(r"(ok|not ok) (\d+) - (.*?)( # SKIP (.*))?$", line.strip())
        if m:
            out[int(m.group(2))] = (m.group(1), m.group(3), m.group(5))
    return out
g, h = checks(sys.argv[1]), checks(sys.argv[2])
bad = 0
for n in sorted(set(g) | set(h)):
    gv, hv = g.get(n), h.get(n)
    if not gv or not hv or gv[1] != hv[1]:
        print("  check %d: guest %s / host %s" % (n, gv, hv)); bad += 1
    elif hv[2]:
        print("  check %d (%s): kernel %s; ulpo: known gap, %s" % (n, gv[1], gv[0], hv[2]))
        bad += gv[0] != "ok"
    elif gv[0] != "ok" or hv[0] != "ok":
        print("  check %d (%s): kernel %s, ulpo %s" % (n, gv[1], gv[0], hv[0])); bad += 1
print("ktls_prog: %d checks, kernel %d ok, ulpo %d ok (%d known gaps), %d disagree" % (
    len(g), sum(v[0] == "ok" for v in g.values()),
    sum(v[0] == "ok" and not v[2] for v in h.values()), sum(bool(v[2]) for v in h.values()), bad))
sys.exit(1 if bad or not g else 0)
PY
	grep -q 'prog-exit=0' "$W/prog.guest" || { echo "guest run failed:"; cat "$W/prog.guest"; FAILED=1; }
	[ "$HRC" = 0 ] || { echo "host run failed:"; cat "$W/prog.host"; FAILED=1; }
	echo "C took $(($(date +%s) - TC)) s"
	;;
esac

case " $PARTS " in *" D "*)
	[ -n "$GUEST_DEV" ] || { echo "FAIL: part D needs GUEST_DEVICE_PROG"; exit 1; }
	echo "== D: the kernel as a device: ULPO_DEVICE=auto with tls.ko, then without it"
	TD=$(date +%s)
	GD=$(basename "$GUEST_DEV")
	# Without: autoloading off (a modprobe that does not exist), tls.ko removed.
	gexec "modprobe tls; ULPO_DEVICE=auto /bin/$GD; echo dev-with=\$?
		echo /nonexistent > /proc/sys/kernel/modprobe; rmmod tls; echo rmmod=\$?
		ULPO_DEVICE=auto /bin/$GD; echo dev-without=\$?
		echo /sbin/modprobe > /proc/sys/kernel/modprobe" 200 | tr -d '\r' >"$W/device.log"
	grep -E '^(device|FAIL)' "$W/device.log"
	W1=$(grep '^device' "$W/device.log" | sed -n 1p) W2=$(grep '^device' "$W/device.log" | sed -n 2p)
	case "$W1" in *"kernel=2 sw=0 "*"rx=ok") ;; *) echo "FAIL: with tls.ko the kernel device should carry both sockets"; FAILED=1 ;; esac
	case "$W2" in *"kernel=0 sw=2 "*"rx=ok") ;; *) echo "FAIL: without tls.ko the sw device should carry both sockets"; FAILED=1 ;; esac
	[ "${W1##*fnv=}" = "${W2##*fnv=}" ] && [ -n "$W1" ] ||
		{ echo "FAIL: the kernel and sw devices put different ciphertext on the wire"; FAILED=1; }
	grep -q 'dev-with=0' "$W/device.log" && grep -q 'dev-without=0' "$W/device.log" &&
		grep -q 'rmmod=0' "$W/device.log" || { cat "$W/device.log"; FAILED=1; }
	echo "D took $(($(date +%s) - TD)) s"
	;;
esac

case " $PARTS " in *" E "*)
	[ -n "$NVME_RW" ] || { echo "FAIL: part E needs NVME_RW"; exit 1; }
	echo "== E: the ulpo NVMe/TCP host against the guest kernel's nvmet-tcp target"
	TE=$(date +%s)
	NQN=${NQN:-nqn.2024-01.io.test:nvmet0}
	# 64 MiB with header and data digests, reads placed by the DDP device; then the copy
	# path (no DDP) on the ramdisk namespace. Both check every byte read back.
	for args in "64 --digests --queues 2 --qd 32" "8 --digests --no-ddp --nsid 2 --qd 8"; do
		echo "nvme_rw 127.0.0.1:$PORT $NQN $args"
		timeout 600 "$NVME_RW" "127.0.0.1:$PORT" "$NQN" $args >"$W/nvme_rw.log" 2>&1
		rc=$?
		sed 's/^/  /' "$W/nvme_rw.log"
		[ $rc = 0 ] || { echo "FAIL: nvme_rw $args (exit $rc)"; FAILED=1; }
	done
	echo "E took $(($(date +%s) - TE)) s"
	;;
esac

case " $PARTS " in *" F "*)
	[ -n "$ULPO" ] || { echo "FAIL: part F needs ULPO"; exit 1; }
	echo "== F: the guest kernel's nvme-tcp initiator against the ulpo target on the host"
	TF=$(date +%s)
	TNQN=nqn.2026-11.io.ulpo:target
	"$ULPO" nvme target --ram 64M --listen "127.0.0.1:$HPORT" >"$W/nvmet.log" 2>&1 &
	HPID=$!
	i=0
	until grep -q "port $HPORT" "$W/nvmet.log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$HPID" 2>/dev/null; then
			cat "$W/nvmet.log"; echo "FAIL: ulpo target did not start"; exit 1
		fi
		sleep 0.1
	done
	# Connect with header and data digests; write 16 MiB of random data with O_DIRECT,
	# read it back from the target (caches dropped), compare; then disconnect.
	gexec "modprobe nvme-tcp
		echo transport=tcp,traddr=10.0.2.2,trsvcid=$HPORT,nqn=$TNQN,hdr_digest,data_digest > /dev/nvme-fabrics; echo connect=\$?
		i=0; while [ ! -b /dev/nvme0n1 ] && [ \$i -lt 50 ]; do sleep 0.2; i=\$((i+1)); done
		cat /sys/class/nvme/nvme0/model /sys/class/nvme/nvme0/transport 2>&1
		dd if=/dev/urandom of=/tmp/data bs=1M count=16 2>/dev/null
		dd if=/tmp/data of=/dev/nvme0n1 bs=1M oflag=direct 2>&1 | tail -n 1; echo write=\$?
		sync; echo 3 > /proc/sys/vm/drop_caches
		dd if=/dev/nvme0n1 of=/tmp/back bs=1M count=16 iflag=direct 2>&1 | tail -n 1; echo read=\$?
		echo guest-md5 \$(md5sum < /tmp/data | cut -d' ' -f1) back-md5 \$(md5sum < /tmp/back | cut -d' ' -f1)
		echo 1 > /sys/class/nvme/nvme0/delete_controller; echo disconnect=\$?
		dmesg | grep -i 'nvme' | tail -n 5" 300 | tr -d '\r' >"$W/initiator.log"
	sed 's/^/  guest: /' "$W/initiator.log"
	GMD5=$(sed -n 's/^guest-md5 \([0-9a-f]*\) .*/\1/p' "$W/initiator.log")
	BMD5=$(sed -n 's/.* back-md5 \([0-9a-f]*\)$/\1/p' "$W/initiator.log")
	# The same 16 MiB read on the host by ulpo's own host, through the target.
	HMD5=$("$ULPO" nvme read --addr "127.0.0.1:$HPORT" --lba 0 --blocks 32768 --digests | md5sum | cut -d' ' -f1)
	echo "  md5: written by the guest $GMD5, read back by the guest $BMD5, read by the ulpo host $HMD5"
	[ -n "$GMD5" ] && [ "$GMD5" = "$BMD5" ] && [ "$GMD5" = "$HMD5" ] ||
		{ echo "FAIL: the checksums differ"; FAILED=1; }
	grep -q 'connect=0' "$W/initiator.log" && grep -q 'write=0' "$W/initiator.log" &&
		grep -q 'read=0' "$W/initiator.log" || { echo "FAIL: the guest's initiator failed"; FAILED=1; }
	kill "$HPID" 2>/dev/null
	wait "$HPID" 2>/dev/null
	HPID=
	sed 's/^/  target: /' "$W/nvmet.log"
	echo "F took $(($(date +%s) - TF)) s"
	;;
esac

echo "vm suite: $( [ $FAILED = 0 ] && echo PASS || echo FAIL ) in $(($(date +%s) - T0)) s (seed $SEED)"
exit $FAILED
