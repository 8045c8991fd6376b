#!/usr/bin/env bash
# bench/rules.sh - the cost of rules: shunt without rules and with ten quick header rules
# (--modify-headers on responses) and with a mix of five quick rules and a Lua on_response
# setting five headers, beside haproxy with the equivalent ten
# `http-response set-header` and mitmdump with the same ten --modify-headers, in one run:
# small keep-alive responses from the harness's origin, wrk -c50, wrk and origin on CPU 0,
# each proxy on CPU 1. Prints medians and ratios.
# usage: bench/rules.sh [-r N] [-d SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CONF=../shared/bench/conf
SHUNT=${SHUNT:-build/shunt}
R=3 D=5
while (($#)); do case $1 in -r) R=$2; shift ;; -d) D=$2; shift ;; *) echo "usage: $0 [-r N] [-d S]" >&2; exit 2 ;; esac; shift; done
run=$(mktemp -d -t shunt-rulesbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT
OP=18481
mkdir -p "$run/html" "$run/tmp"
sed -e "s|@DIR@|$run|g" -e "s|@ORIGIN_PORT@|$OP|g" -e "s|@ORIGIN_WORKERS@|1|g" "$CONF/origin.conf" >"$run/origin.conf"
taskset -c 0 nginx -c "$run/origin.conf" -p "$run" -g 'daemon off;' 2>/dev/null & pids+=($!)
# ten rules: X-Rule-0..8 and, as the story's, Server
quick=() hap="" mitm=()
for i in 0 1 2 3 4 5 6 7 8; do
    quick+=(--modify-headers "/~s/X-Rule-$i/value-$i")
    mitm+=(--modify-headers "/~s/X-Rule-$i/value-$i")
    hap+="    http-response set-header X-Rule-$i value-$i"$'\n'
done
quick+=(--modify-headers "/~s/Server/Microsoft-IIS/6.0")
# the mix the issue names: five quick rules and a Lua file setting five more in on_response
mix=()
for i in 0 1 2 3; do mix+=(--modify-headers "/~s/X-Rule-$i/value-$i"); done
mix+=(--modify-headers "/~s/Server/Microsoft-IIS/6.0")
cat >"$run/five.lua" <<'LUA'
function on_response(s)
  local h = s.response.headers
  h:set("X-Rule-4", "value-4")
  h:set("X-Rule-5", "value-5")
  h:set("X-Rule-6", "value-6")
  h:set("X-Rule-7", "value-7")
  h:set("X-Rule-8", "value-8")
end
LUA
mitm+=(--modify-headers "/~s/Server/Microsoft-IIS/6.0")
hap+="    http-response set-header Server Microsoft-IIS/6.0"$'\n'
cat >"$run/haproxy.cfg" <<HAP
global
    maxconn 8000
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:18484
$hap    default_backend origin
backend origin
    server o1 127.0.0.1:$OP
HAP
port_of() { case $1 in shunt-none) echo 18482 ;; shunt-10) echo 18483 ;; haproxy-10) echo 18484 ;; shunt-mix) echo 18486 ;; *) echo 18485 ;; esac; }
start_peer() {
    local P; P=$(port_of "$1")
    case $1 in
    shunt-none) taskset -c 1 "$SHUNT" proxy --listen 127.0.0.1:$P --reverse http://127.0.0.1:$OP --workers 1 --no-admin >/dev/null 2>&1 & ;;
    shunt-10) taskset -c 1 "$SHUNT" proxy --listen 127.0.0.1:$P --reverse http://127.0.0.1:$OP --workers 1 --no-admin "${quick[@]}" >/dev/null 2>&1 & ;;
    shunt-mix) taskset -c 1 "$SHUNT" proxy --listen 127.0.0.1:$P --reverse http://127.0.0.1:$OP --workers 1 --no-admin "${mix[@]}" --rules "$run/five.lua" >/dev/null 2>&1 & ;;
    haproxy-10) taskset -c 1 haproxy -db -f "$run/haproxy.cfg" >/dev/null 2>&1 & ;;
    mitmdump-10) taskset -c 1 mitmdump -q --mode "reverse:http://127.0.0.1:$OP" --listen-host 127.0.0.1 --listen-port $P "${mitm[@]}" >/dev/null 2>&1 & ;;
    esac
    echo $!
}
declare -A all
for i in $(seq "$R"); do
    for peer in shunt-none shunt-10 shunt-mix haproxy-10 mitmdump-10; do
        pid=$(start_peer $peer)
        P=$(port_of $peer)
        for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$P/" && break; sleep 0.1; done
        check=$(curl -s -D - -o /dev/null "http://127.0.0.1:$P/" | tr -d '\r' | grep -ci '^x-rule-' || true)
        rps=$(taskset -c 0 wrk -t1 -c50 -d"$D"s "http://127.0.0.1:$P/" | awk '/Requests\/sec/ {printf "%d", $2}')
        kill -TERM "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        all[$peer]+="$rps "
        [ $i = 1 ] && echo "  $peer: X-Rule headers in a response: $check" >&2
    done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
none=$(echo "${all[shunt-none]}" | med)
ten=$(echo "${all[shunt-10]}" | med)
printf '%-12s %9s   %s\n' peer rps_med "runs (wrk -t1 -c50 -d${D}s, 100-byte keep-alive responses, ten rules)"
for k in shunt-none shunt-10 shunt-mix haproxy-10 mitmdump-10; do
    m=$(echo "${all[$k]}" | med)
    printf '%-12s %9s   %s  shunt-10/this=%.2f\n' "$k" "$m" "${all[$k]}" "$(echo "$ten $m" | awk '{print $1/$2}')"
done
