#!/bin/sh
# run_tshark.sh - Wireshark's NVMe/TCP dissector reads a capture of ulpo host <-> ulpo
# target traffic (ICReq/ICResp, Connect, properties, Identify, in-capsule and R2T writes,
# reads) with and without digests: every PDU type must decode, and nothing may be flagged
# malformed or as a dissector error.
# usage: run_tshark.sh ULPO NVME_RW
set -u
ULPO=$1 NVME_RW=$2
command -v tshark >/dev/null && command -v dumpcap >/dev/null ||
	{ echo "SKIP: tshark/dumpcap not installed"; exit 77; }
W=$(mktemp -d /tmp/ulpo-tshark.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
	[ -n "${TPID:-}" ] && kill "$TPID" 2>/dev/null
	[ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
"$ULPO" nvme target --ram 64M --listen "127.0.0.1:$PORT" >"$W/target.log" 2>&1 &
TPID=$!
dumpcap -q -i lo -f "tcp port $PORT" -w "$W/cap.pcapng" >"$W/dumpcap.log" 2>&1 &
CPID=$!
i=0
until grep -q "port $PORT" "$W/target.log" 2>/dev/null && [ -s "$W/cap.pcapng" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { cat "$W/target.log" "$W/dumpcap.log"; echo "FAIL: target or capture did not start"; exit 1; }
	sleep 0.1
done
FAILED=0
for args in "4 --digests --qd 8" "4 --qd 8"; do
	"$NVME_RW" "127.0.0.1:$PORT" nqn.2026-11.io.ulpo:target $args >"$W/rw.log" 2>&1 ||
		{ cat "$W/rw.log"; echo "FAIL: nvme_rw $args"; FAILED=1; }
done
sleep 0.5
kill "$CPID"
wait "$CPID" 2>/dev/null
CPID=
tshark -r "$W/cap.pcapng" -d "tcp.port==$PORT,nvme-tcp" -V >"$W/decode.txt" 2>"$W/tshark.err"
tshark -r "$W/cap.pcapng" -d "tcp.port==$PORT,nvme-tcp" -T fields -e nvme-tcp.type 2>/dev/null |
	tr ',' '\n' | grep -v '^$' | sort -n | uniq -c >"$W/types.txt"
echo "PDUs by type (0 ICReq, 1 ICResp, 4 CapsuleCmd, 5 CapsuleResp, 6 H2CData, 7 C2HData, 9 R2T):"
sed 's/^/  /' "$W/types.txt"
for t in 0 1 4 5 6 7 9; do
	awk -v t=$t '$2 == t { found = 1 } END { exit !found }' "$W/types.txt" ||
		{ echo "FAIL: no PDU of type $t decoded"; FAILED=1; }
done
BAD=$(grep -c -i -E 'malformed|dissector bug|\[Expert Info \(Error' "$W/decode.txt")
echo "malformed or error-flagged: $BAD"
[ "$BAD" = 0 ] || { grep -i -E -m 5 -B 3 'malformed|dissector bug|\[Expert Info \(Error' "$W/decode.txt"; FAILED=1; }
[ $FAILED = 0 ] && echo "PASS" || echo "FAIL"
exit $FAILED
