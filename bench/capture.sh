#!/usr/bin/env bash
# bench/capture.sh - the cost of recording: shunt with --capture off and on, and mitmdump
# recording to a flow file (-w), on the same load in one run: small keep-alive responses
# (the harness's origin, wrk -c50). Pinned like peers.sh: wrk and the origin on CPU 0, the
# proxy on CPU 1 (so shunt's store thread shares the proxy's CPU). Prints medians, ratios,
# the proxy's CPU time per request (utime+stime of the whole process, from /proc/PID/stat,
# over wrk's run, divided by wrk's requests), the events shunt dropped and the capture size
# per exchange. The CPU figure moves when shunt gets faster even when the load side
# saturates first (wrk and the origin share CPU 0).
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
declare -A all dropped size cpu
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; } # utime + stime
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
        t0=$(cpu_ticks "$pid")
        out=$(taskset -c 0 wrk -t1 -c50 -d"$D"s "http://127.0.0.1:$P/")
        t1=$(cpu_ticks "$pid")
        rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
        n=$(echo "$out" | awk '/requests in/ {print $1}')
        cpu[$peer]+="$(awk -v t="$((t1 - t0))" -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}') "
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
cpu_off=$(echo "${cpu[shunt-off]}" | med)
cpu_cap=$(echo "${cpu[shunt-capture]}" | med)
cpu_mitm=$(echo "${cpu[mitmdump-w]}" | med)
printf '%-16s %9s %9s   %s\n' peer rps_med us/req "runs (wrk -t1 -c50 -d${D}s, 100-byte keep-alive responses)"
printf '%-16s %9s %9s   rps: %s  us/req: %s\n' shunt-off "$off" "$cpu_off" "${all[shunt-off]}" "${cpu[shunt-off]}"
printf '%-16s %9s %9s   rps: %s  us/req: %s\n' shunt-capture "$cap" "$cpu_cap" "${all[shunt-capture]}" "${cpu[shunt-capture]}"
printf '%-16s %9s %9s   rps: %s  us/req: %s\n' mitmdump-w "$mitm" "$cpu_mitm" "${all[mitmdump-w]}" "${cpu[mitmdump-w]}"
printf 'capture/off: rps %.2f (target >= 0.8), CPU per request %.2f; dropped: %s; bytes per exchange: %s\n' \
    "$(echo "$cap $off" | awk '{print $1/$2}')" "$(echo "$cpu_cap $cpu_off" | awk '{print $1/$2}')" \
    "${dropped[shunt-capture]}" "${size[shunt-capture]}"
printf 'shunt-capture/mitmdump-w: rps %.1f\n' "$(echo "$cap $mitm" | awk '{print $1/$2}')"
