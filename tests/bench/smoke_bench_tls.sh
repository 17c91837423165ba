#!/bin/sh
# smoke_bench_tls.sh ULPO DIR - run `ULPO bench tls --quick` on 2 MiB per run with every
# output, in DIR; check it exits 0, prints a table with a column per mode and a row per
# (cipher, rx, streams), marks openssl n/a for SM4, and writes a PNG, CSV and JSON.
set -eu
ulpo=$1
dir=$2
out=$dir/bench-tls-smoke.txt
png=$dir/bench-tls-smoke.png
csv=$dir/bench-tls-smoke.csv
json=$dir/bench-tls-smoke.json
modes="tcp openssl ulpo ulpo-async1 ulpo-async2"

fail() {
	echo "FAIL: $*" >&2
	echo "--- output:" >&2
	cat "$out" >&2
	exit 1
}

rm -f "$out" "$png" "$csv" "$json"
"$ulpo" bench tls --quick --bytes 2M --plot "$png" --csv "$csv" --json "$json" >"$out" ||
	fail "exit status $?"

# The GB/s table: its header line starts with "cipher"; every mode is one of its fields.
header=$(grep -m1 '^cipher ' "$out") || fail "no table header"
for m in $modes; do
	echo "$header" | tr -s ' ' '\n' | grep -qx -- "$m" || fail "no column '$m'"
done
rows=$(awk '/^GB\/s/ { t = 1; next } t && /^(aes-128-gcm|sm4-gcm) / { n++ } /^$/ { t = 0 }
	END { print n + 0 }' "$out")
[ "$rows" = 8 ] || fail "$rows table rows, expected 8"
grep -q '^sm4-gcm .* n/a ' "$out" || fail "no n/a for openssl with sm4-gcm"
grep -q '^goals' "$out" || fail "no goals"

sig=$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')
[ "$sig" = 89504e470d0a1a0a ] || fail "$png is not a PNG (starts $sig)"
# 8 rows x 5 modes and a header
[ "$(wc -l <"$csv")" = 41 ] || fail "$csv: $(wc -l <"$csv") lines, expected 41"
grep -q '"rows"' "$json" || fail "$json has no rows"
echo "ok: table, $(wc -c <"$png") byte PNG, CSV, JSON"
