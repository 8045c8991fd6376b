#!/usr/bin/env bash
# bench/capture.sh - the cost of recording: shunt with --capture off and on, and mitmdump
# recording to a flow file (-w), on the same load in one run: small keep-alive responses
# (the harness's origin, wrk -c50). Pinned like peers.sh: wrk and the origin on CPU 0, the
# proxy on CPU 1 (so shunt's store thread shares the proxy's CPU). Prints medians, ratios,
# the events shunt dropped and the capture size per exchange.
# usage: bench/capture.sh [-r N] [-d SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CONF=../shared/bench/conf
SHUNT=${SHUNT:-build/shunt}
R=3 D=5
while (($#)); do case $1 in -r) R=$2; shift ;; -d) D=$2; shift ;; *) echo "usage: $0 [-r N] [-d S]" >&2; exit 2 ;; esac; shift; done
run=$(mktemp -d -t shunt-capbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT
OP=18381
mkdir -p "$run/html" "$run/tmp"
sed -e "s|@DIR@|$run|g" -e "s|@ORIGIN_PORT@|$OP|g" -e "s|@ORIGIN_WORKERS@|1|g" "$CONF/origin.conf" >"$run/origin.conf"
taskset -c 0 nginx -c "$run/origin.conf" -p "$run" -g 'daemon off;' 2>/dev/null & pids+=($!)
sleep 0.5
declare -A all dropped size
port_of() { case $1 in shunt-off) echo 18382 ;; shunt-capture) echo 18383 ;; *) echo 18384 ;; esac; }
start_peer() { # name -> pid of the started proxy
    local P; P=$(port_of "$1")
    case $1 in
    shunt-off) taskset -c 1 "$SHUNT" proxy --listen 127.0.0.1:$P --reverse http://127.0.0.1:$OP --workers 1 >/dev/null 2>&1 & ;;
    shunt-capture) rm -f "$run/c.db"*
        taskset -c 1 "$SHUNT" proxy --listen 127.0.0.1:$P --reverse http://127.0.0.1:$OP --workers 1 --capture "$run/c.db" >/dev/null 2>"$run/shunt.err" & ;;
    mitmdump-w) rm -f "$run/flows"
        taskset -c 1 mitmdump -q --mode "reverse:http://127.0.0.1:$OP" --listen-host 127.0.0.1 --listen-port $P -w "$run/flows" >/dev/null 2>"$run/mitm.err" & ;;
    esac
    echo $!
}
for i in $(seq "$R"); do
    for peer in shunt-off shunt-capture mitmdump-w; do
        pid=$(start_peer $peer)
        P=$(port_of $peer)
        for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$P/" && break; sleep 0.1; done
        out=$(taskset -c 0 wrk -t1 -c50 -d"$D"s "http://127.0.0.1:$P/")
        rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        kill -TERM "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        all[$peer]+="$rps "
        if [ $peer = shunt-capture ]; then
            d=$(sqlite3 "$run/c.db" 'SELECT events_dropped FROM capture')
            x=$(sqlite3 "$run/c.db" 'SELECT count(*) FROM exchanges')
            dropped[$peer]+="$d "
            size[$peer]+="$(( $(stat -c %s "$run/c.db") / (x > 0 ? x : 1) )) "
            echo "  run $i: $n requests, $x exchanges recorded, $d events dropped" >&2
        fi
    done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off=$(echo "${all[shunt-off]}" | med)
cap=$(echo "${all[shunt-capture]}" | med)
mitm=$(echo "${all[mitmdump-w]}" | med)
printf '%-16s %9s   %s\n' peer rps_med "runs (wrk -t1 -c50 -d${D}s, 100-byte keep-alive responses)"
printf '%-16s %9s   %s\n' shunt-off "$off" "${all[shunt-off]}"
printf '%-16s %9s   %s  capture/off=%.2f  dropped: %s  bytes per exchange: %s\n' shunt-capture "$cap" \
    "${all[shunt-capture]}" "$(echo "$cap $off" | awk '{print $1/$2}')" "${dropped[shunt-capture]}" "${size[shunt-capture]}"
printf '%-16s %9s   %s  shunt-capture/this=%.1f\n' mitmdump-w "$mitm" "${all[mitmdump-w]}" "$(echo "$cap $mitm" | awk '{print $1/$2}')"
