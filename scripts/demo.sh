#!/usr/bin/env bash
# scripts/demo.sh - `make demo`: shunt between curl and an nginx origin on loopback, showing
# which client port and which upstream port carried each request (pairing).
# Starts its own processes on free ports and stops exactly those when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
SHUNT=${SHUNT:-build/shunt}
run=$(mktemp -d -t shunt-demo.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$run"
}
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "demo: no free port found" >&2; exit 1
}

origin=$(free_port)
mkdir -p "$run/tmp"
cat >"$run/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $run/nginx.pid;
error_log $run/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $run/tmp; proxy_temp_path $run/tmp; fastcgi_temp_path $run/tmp;
    uwsgi_temp_path $run/tmp; scgi_temp_path $run/tmp;
    server {
        listen 127.0.0.1:$origin;
        location / { return 200 "hello from the origin\n"; }
    }
}
NGINX
nginx -c "$run/nginx.conf" -p "$run" >/dev/null 2>&1 &
pids+=($!)

"$SHUNT" proxy --listen 127.0.0.1:0 -v >"$run/shunt.out" 2>"$run/shunt.err" &
pids+=($!)
for _ in $(seq 100); do
    grep -q 'listening on' "$run/shunt.out" 2>/dev/null && break
    sleep 0.05
done
proxy=$(sed -n 's/^shunt: listening on //p' "$run/shunt.out")
[ -n "$proxy" ] || { echo "demo: shunt did not start:"; cat "$run/shunt.err"; exit 1; }
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$origin") 2>/dev/null && break
    sleep 0.05
done

echo "shunt demo: curl -> shunt (forward proxy on $proxy) -> nginx (127.0.0.1:$origin)"
echo

table() { # prints the -v lines logged since line $1 as a table
    echo "   request                         client port   upstream port   status"
    tail -n +"$1" "$run/shunt.err" | grep '^shunt: exchange' |
        sed -E 's/.*client=([0-9]+) upstream=([0-9]+) idx=([0-9]+) ([A-Z]+) ([^ ]+) ([0-9]+).*/\4 \5 \1 \2 \6/' |
        while read -r m u c up st; do
            printf '   %-32s %-13s %-15s %s\n' "$m ${u#http://127.0.0.1:$origin}" "$c" "$up" "$st"
        done
}
count() { # distinct client and upstream ports since line $1
    local lines
    lines=$(tail -n +"$1" "$run/shunt.err" | grep '^shunt: exchange')
    echo "$(echo "$lines" | grep -o 'client=[0-9]*' | sort -u | wc -l) client connection(s)," \
        "$(echo "$lines" | grep -o 'upstream=[0-9]*' | sort -u | wc -l) upstream connection(s)"
}
wait_lines() { # until $1 exchange lines are logged
    for _ in $(seq 100); do
        [ "$(grep -c '^shunt: exchange' "$run/shunt.err")" -ge "$1" ] && return
        sleep 0.05
    done
}

echo "1) three requests on one keep-alive connection (one curl, three URLs):"
start=$(($(wc -l <"$run/shunt.err") + 1))
curl -s -x "http://$proxy" "http://127.0.0.1:$origin/one" \
    "http://127.0.0.1:$origin/two" "http://127.0.0.1:$origin/three" >/dev/null
wait_lines 3
table "$start"
echo "   => $(count "$start"): the client connection kept its own upstream connection."
echo

echo "2) three requests, each on a connection of its own (three curls):"
start=$(($(wc -l <"$run/shunt.err") + 1))
for path in four five six; do
    curl -s -o /dev/null -x "http://$proxy" "http://127.0.0.1:$origin/$path"
done
wait_lines 6
table "$start"
echo "   => $(count "$start"): one upstream connection per client connection, never shared."
echo
echo "Try it yourself:  $SHUNT proxy -v   and   curl -x http://127.0.0.1:8888 http://127.0.0.1:PORT/"
