#!/usr/bin/env bash
# bench/close_pairing.sh - the `close` scenario (a new client connection per request) with
# haproxy as peers.sh configures it (http-reuse always: upstream connections pooled across
# clients) and with http-reuse never (an upstream connection per client connection, the
# work pairing does), beside shunt, in one run. Same pinning as peers.sh: wrk and the origin
# on CPU 0, the proxy on CPU 1. Prints medians and ratios.
# usage: bench/close_pairing.sh [-r N] [-d SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CONF=../shared/bench/conf
R=5 D=3
while (($#)); do case $1 in -r) R=$2; shift ;; -d) D=$2; shift ;; *) echo "usage: $0 [-r N] [-d S]" >&2; exit 2 ;; esac; shift; done
run=$(mktemp -d -t shunt-close.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT
OP=18281 HP=18282 HN=18283 SP=18284
mkdir -p "$run/html" "$run/tmp"
render() { sed -e "s|@DIR@|$run|g" -e "s|@PORT@|$2|g" -e "s|@ORIGIN_PORT@|$OP|g" -e "s|@ORIGIN_WORKERS@|1|g" "$CONF/$1" >"$run/$3"; }
render origin.conf 0 origin.conf
render haproxy.cfg "$HP" ha-always.cfg
render haproxy.cfg "$HN" ha-never.cfg
sed -i 's/http-reuse always/http-reuse never/' "$run/ha-never.cfg"
taskset -c 0 nginx -c "$run/origin.conf" -p "$run" -g 'daemon off;' 2>/dev/null & pids+=($!)
taskset -c 1 haproxy -db -f "$run/ha-always.cfg" >/dev/null 2>&1 & pids+=($!)
taskset -c 1 haproxy -db -f "$run/ha-never.cfg" >/dev/null 2>&1 & pids+=($!)
taskset -c 1 build/shunt proxy --listen 127.0.0.1:$SP --reverse http://127.0.0.1:$OP --workers 1 >/dev/null 2>&1 & pids+=($!)
sleep 1
declare -A all
for i in $(seq "$R"); do
    for p in "haproxy-reuse-always:$HP" "haproxy-reuse-never:$HN" "shunt:$SP"; do
        rps=$(taskset -c 0 wrk -t1 -c50 -d"$D"s -H 'Connection: close' "http://127.0.0.1:${p#*:}/" |
            awk '/Requests\/sec/ {printf "%d", $2}')
        all[${p%%:*}]+="$rps "
    done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
s=$(echo "${all[shunt]}" | med)
printf '%-22s %10s   %s\n' peer rps_med "runs (wrk -c50 -d${D}s, Connection: close)"
for k in haproxy-reuse-always haproxy-reuse-never shunt; do
    m=$(echo "${all[$k]}" | med)
    printf '%-22s %10s   %s  shunt/this=%.2f\n' "$k" "$m" "${all[$k]}" "$(echo "$s $m" | awk '{print $1/$2}')"
done
