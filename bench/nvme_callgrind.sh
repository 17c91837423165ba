#!/bin/sh
# nvme_callgrind.sh - the host's instructions per byte read, DDP on against off (and with
# the data digest off and on), counted by callgrind (these machines have no hardware
# counters). The target runs in its own process, outside valgrind: only the host counts.
# usage: nvme_callgrind.sh ULPO NVME_BENCH [MIB]
set -u
ULPO=$1 BENCH=$2 MIB=${3:-64}
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed"; exit 77; }
W=$(mktemp -d /tmp/ulpo-cg.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill $TPID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
"$ULPO" nvme target --ram "$((MIB + 16))M" --listen "127.0.0.1:$PORT" >"$W/target.log" 2>&1 &
TPID=$!
i=0
until grep -q "port $PORT" "$W/target.log" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 100 ] && { cat "$W/target.log"; exit 1; }; sleep 0.1
done
echo "host instructions per byte read ($MIB MiB of 128 KiB sequential reads, callgrind Ir):"
FAILED=0
for dg in off on; do
	for ddp in on off; do
		valgrind --tool=callgrind --callgrind-out-file="$W/cg.$ddp.$dg" \
			"$BENCH" --host-only --addr "127.0.0.1:$PORT" --ddp $ddp --digest $dg \
			--mib "$MIB" >"$W/run.$ddp.$dg" 2>"$W/vg.$ddp.$dg" ||
			{ cat "$W/run.$ddp.$dg" "$W/vg.$ddp.$dg" | tail -5; FAILED=1; }
		IR=$(awk '/^summary:|^totals:/ { print $2; exit }' "$W/cg.$ddp.$dg")
		echo "$dg $ddp $IR" >>"$W/ir"
		printf "  data digest %-3s DDP %-3s %14s Ir  %.4f per byte\n" $dg $ddp "$IR" \
			"$(awk -v a="$IR" -v m="$MIB" 'BEGIN { print a / (m * 1048576) }')"
	done
	ON=$(awk -v d=$dg '$1 == d && $2 == "on" { print $3 }' "$W/ir")
	OFF=$(awk -v d=$dg '$1 == d && $2 == "off" { print $3 }' "$W/ir")
	printf "  data digest %s: DDP on / DDP off = %.3f (goal <= 0.60)\n" $dg \
		"$(awk -v a="$ON" -v b="$OFF" 'BEGIN { print b ? a / b : 0 }')"
done
exit $FAILED
