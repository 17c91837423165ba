#!/bin/sh
# `ulpo stats` lists every process running under `ulpo run`, TLS sockets or not, and
# forgets it when it ends. usage: stats_list.sh ULPO
ULPO=$1
"$ULPO" run -- sleep 3 &
PID=$!
i=0
until "$ULPO" stats --pid "$PID" --json 2>/dev/null | grep -q "\"comm\": \"sleep\""; do
	i=$((i + 1))
	[ $i -gt 40 ] && { echo "FAIL: ulpo stats does not list pid $PID (ulpo run -- sleep)"; "$ULPO" stats; exit 1; }
	sleep 0.05
done
"$ULPO" stats | grep -q "^pid $PID (sleep)" || { echo "FAIL: not in the text listing"; exit 1; }
wait "$PID"
if "$ULPO" stats --pid "$PID" >/dev/null 2>&1; then
	echo "FAIL: pid $PID is still listed after it exited"
	exit 1
fi
echo "ok: listed while running, gone after exit"
