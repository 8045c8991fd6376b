#!/usr/bin/env bash
# bench/capture_views.sh - the capture views on a million exchanges: times `shunt sessions`,
# `show` and `connections` (the release build) against the sqlite3 CLI running the equivalent
# raw query on the same file in the same run (the ceiling: SQLite with nothing around it), and
# prints a Markdown table with the ratios.
#
#   bench/capture_views.sh [-n EXCHANGES] [-r RUNS] [-f FILE]
#
# The capture is generated once by bench/gen_capture.py (about 35 s, 1.4 GB) and reused.
# Needs hyperfine and sqlite3 (Debian packages).
set -eu
cd "$(dirname "$0")/.."
n=1000000 runs=20 file=
while getopts n:r:f: o; do
    case $o in
    n) n=$OPTARG ;;
    r) runs=$OPTARG ;;
    f) file=$OPTARG ;;
    *) exit 2 ;;
    esac
done
file=${file:-${TMPDIR:-/tmp}/shunt-bench-views/cap-$n.db}
for p in hyperfine sqlite3; do
    command -v $p >/dev/null || { echo "bench: $p is missing (apt-get install $p)" >&2; exit 2; }
done
[ -x build/shunt ] || make --no-print-directory build/shunt
mkdir -p "$(dirname "$file")"
[ -f "$file" ] || bench/gen_capture.py "$file" --exchanges "$n"

shunt=build/shunt
mid=$((n / 2))
conn=$((n / 40))
off=$((n * 9 / 10))
sq="sqlite3 -readonly $file"
cols="e.id, e.conn_id, e.idx, c.client_port, e.method, e.host, e.path, e.status, e.resp_bytes"
cols="$cols, e.duration_us, e.flags"
from="FROM exchanges e LEFT JOIN connections c ON c.id = e.conn_id"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name | shunt command | the sqlite3 query that prints the same rows
cases=(
    "sessions --limit 50|$shunt sessions $file --limit 50|SELECT $cols $from ORDER BY e.id LIMIT 50"
    "sessions --offset $off --limit 50|$shunt sessions $file --offset $off --limit 50|SELECT $cols $from ORDER BY e.id LIMIT 50 OFFSET $off"
    "sessions --host api.example.com --limit 50|$shunt sessions $file --host api.example.com --limit 50|SELECT $cols $from WHERE e.host = 'api.example.com' ORDER BY e.id LIMIT 50"
    "sessions --host rare.example.com --limit 50|$shunt sessions $file --host rare.example.com --limit 50|SELECT $cols $from WHERE e.host = 'rare.example.com' ORDER BY e.id LIMIT 50"
    "sessions --status 404 --offset 10000 --limit 50|$shunt sessions $file --status 404 --offset 10000 --limit 50|SELECT $cols $from WHERE e.status = 404 ORDER BY e.id LIMIT 50 OFFSET 10000"
    "sessions --conn $conn|$shunt sessions $file --conn $conn|SELECT $cols $from WHERE e.conn_id = $conn ORDER BY e.id"
    "show $mid|$shunt show $file $mid|SELECT * FROM exchanges WHERE id = $mid; SELECT * FROM changes WHERE exchange_id = $mid; SELECT direction, substr(data, 1, 2048), length(data), truncated FROM bodies WHERE exchange_id = $mid"
    "connections --limit 50|$shunt connections $file --limit 50|SELECT c.id, c.client_port, (SELECT group_concat(local_port) FROM upstreams u WHERE u.conn_id = c.id), (SELECT count(*) FROM exchanges x WHERE x.conn_id = c.id), c.opened_us, c.closed_us, c.closer, c.close_how, c.auth_scheme, c.tls, c.tunnel FROM connections c ORDER BY c.id LIMIT 50"
    "sessions (all $n rows, to /dev/null)|$shunt sessions $file|SELECT $cols $from ORDER BY e.id"
)

echo "capture: $file ($(du -m "$file" | cut -f1) MB, $n exchanges); $(nproc) cores;" \
    "shunt $(git rev-parse --short HEAD 2>/dev/null || echo '?')+; sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
echo
echo "| view | shunt ms (median) | sqlite3 CLI ms (median) | shunt / sqlite3 |"
echo "| --- | ---: | ---: | ---: |"
i=0
for c in "${cases[@]}"; do
    IFS='|' read -r name cmd query <<<"$c"
    r=$runs
    case $name in *"all "*) r=3 ;; esac
    printf '%s\n' "$query" >"$out/q$i.sql"
    # Both through the shell (hyperfine subtracts its start-up time), output to /dev/null.
    hyperfine --warmup 2 --runs "$r" --export-json "$out/h$i.json" \
        "$cmd >/dev/null" "$sq < $out/q$i.sql >/dev/null" >/dev/null
    python3 - "$out/h$i.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
a, b = (x["median"] * 1000 for x in r)
print(f"| `{sys.argv[2]}` | {a:.1f} | {b:.1f} | {a / b:.2f} |")
PY
    i=$((i + 1))
done
