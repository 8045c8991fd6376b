#!/usr/bin/env bash
# bench/tls.sh - HTTPS interception beside its peers, measured in one run on this machine.
#
#   new-tls   a new TLS connection per request (full handshakes, no resumption), SNI cycling
#             over --names host names:
#               shunt     shunt proxy --intercept: CONNECT, TLS with shunt's leaf, TLS from
#                         shunt to the origin (two handshakes per request)
#               mitmdump  mitmdump --mode regular with its own CA: the same two handshakes
#               haproxy   haproxy terminating TLS with its own certificate (ssl crt), plain
#                         HTTP to the origin (one handshake per request)
#   ka-tls    keep-alive requests over intercepted connections (shunt)
#   ka-plain  keep-alive requests through shunt as a plain HTTP forward proxy
#
# Conventions of ../shared/bench/peers.sh: an nginx origin (HTTP and HTTPS, 100-byte body)
# and the load generator (bench/tls_load.c: wrk cannot CONNECT) pinned to one CPU, the peer
# to the other; the median of --repeat runs; the peer's CPU time per request (us/req) beside
# its rps; fgn% = CPU that other processes used during a run (a run above --max-foreign is
# run again, up to 3 tries); only the processes started here are stopped; the run folder is
# removed unless --keep. Also: shunt's leaf cache hit rate and the cost of a miss, from the
# line shunt prints when it stops. Nothing here is a test.
#
# usage: bench/tls.sh [--quick] [-r N] [-d SEC] [-c CONNS] [--names N] [--peers "LIST"]
#                     [--scenarios "LIST"] [--no-pin] [--keep] [--ports BASE]
#   --ports BASE: the origin on BASE+1 (HTTP) and BASE+2 (HTTPS), peers from BASE+11
#   (default 18180: two runs at once need two bases)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPEAT=3 DURATION=5 CONNS=50 NAMES=200 PIN=1 KEEP=0 MAX_FGN=15
PEERS="shunt mitmdump haproxy" SCENARIOS="new-tls ka-tls ka-plain"
CPU_LOAD=0 CPU_PROXY=1 ORIGIN_PORT=18181 ORIGIN_TLS_PORT=18182 BASE_PORT=18190
SHUNT=${SHUNT:-$ROOT/build/shunt}

while (($#)); do
  case $1 in
    --quick) REPEAT=1 DURATION=2 ;;
    -r) REPEAT=$2; shift ;;
    -d) DURATION=$2; shift ;;
    -c) CONNS=$2; shift ;;
    --names) NAMES=$2; shift ;;
    --peers) PEERS=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    --no-pin) PIN=0 ;;
    --keep) KEEP=1 ;;
    --max-foreign) MAX_FGN=$2; shift ;;
    --ports) ORIGIN_PORT=$(($2 + 1)) ORIGIN_TLS_PORT=$(($2 + 2)) BASE_PORT=$(($2 + 10)); shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in nginx openssl cc taskset; do
  command -v "$tool" >/dev/null || { echo "bench: missing $tool (scripts/deps.sh bench)" >&2; exit 1; }
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
RUN=$(mktemp -d -t shunt-tls-bench.XXXXXX)
chmod 755 "$RUN"
mkdir -p "$RUN/tmp" "$RUN/xdg" "$RUN/mitm"
declare -A PID_OF=() RES=() CPU=()

cleanup() {
  local name
  for name in "${!PID_OF[@]}"; do stop "$name"; done
  if ((KEEP)); then echo "run dir kept: $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[tls] $*" >&2; }

pin() { if ((PIN)); then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

spawn() { # name port cpu cmd...: starts it, waits until the port answers
  local name=$1 port=$2 cpu=$3; shift 3
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use" >&2; exit 1
  fi
  (pin "$cpu" "$@") >"$RUN/$name.out" 2>&1 &
  PID_OF[$name]=$!
  for _ in {1..150}; do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "${PID_OF[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start listening on $port:" >&2; tail -n 20 "$RUN/$name.out" >&2; exit 1
}

stop() { # name: TERM, KILL after 5 s, by the PID this script started
  local pid=${PID_OF[$1]}
  kill -TERM "$pid" 2>/dev/null || true
  for _ in {1..50}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'PID_OF[$1]'
}

peer_ticks() { # utime+stime of a process and its direct children
  local pid=$1 total=0 c
  for c in $pid $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

own_ticks() { # CPU ticks of this script and its descendants
  local todo=($$) p f kids total=0
  while ((${#todo[@]})); do
    p=${todo[-1]}; unset 'todo[-1]'
    read -r f <"/proc/$p/stat" 2>/dev/null || continue
    read -r -a f <<<"${f##*) }"; total=$((total + f[11] + f[12] + f[13] + f[14]))
    kids=(); read -r -a kids 2>/dev/null <"/proc/$p/task/$p/children" || true; todo+=("${kids[@]}")
  done
  echo "$total"
}

all_ticks() { # busy and total ticks of the whole machine, and the number of CPUs
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
       $1 ~ /^cpu[0-9]/ { n++ } END { print n }' /proc/stat | paste -sd' '
}

# ---- the test PKI and the origin -------------------------------------------------------
log "making a test CA and the origin's certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$RUN/ca.key" \
  -out "$RUN/ca.pem" -days 2 -subj "/CN=bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$RUN/origin.key" \
  -out "$RUN/origin.csr" -subj "/CN=bench.test" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:bench.test,DNS:*.bench.test\nextendedKeyUsage=serverAuth\n' \
  >"$RUN/ext.cnf"
openssl x509 -req -in "$RUN/origin.csr" -CA "$RUN/ca.pem" -CAkey "$RUN/ca.key" \
  -CAcreateserial -days 2 -extfile "$RUN/ext.cnf" -out "$RUN/origin.pem" 2>/dev/null
cat "$RUN/origin.pem" "$RUN/origin.key" >"$RUN/haproxy.pem"
cc -O2 -o "$RUN/tls_load" bench/tls_load.c -lssl -lcrypto

cat >"$RUN/origin.conf" <<EOF
worker_processes 1;
pid $RUN/origin.pid;
error_log $RUN/origin.err warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    client_body_temp_path $RUN/tmp/body;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        listen 127.0.0.1:$ORIGIN_TLS_PORT ssl backlog=4096;
        ssl_certificate $RUN/origin.pem;
        ssl_certificate_key $RUN/origin.key;
        location = / {
            default_type text/plain;
            return 200 "peers.sh origin: fixed small body for proxy benchmarks, 100 bytes long incl. newline...............\n";
        }
    }
}
EOF
spawn origin "$ORIGIN_TLS_PORT" "$CPU_LOAD" nginx -p "$RUN" -e stderr -g 'daemon off;' -c "$RUN/origin.conf"

cat >"$RUN/haproxy.cfg" <<EOF
global
    maxconn 8000
    nbthread 1
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    http-reuse always
frontend fe
    bind 127.0.0.1:@PORT@ ssl crt $RUN/haproxy.pem alpn http/1.1
    http-response set-header Server Microsoft-IIS/6.0
    default_backend origin
backend origin
    server o1 127.0.0.1:$ORIGIN_PORT
EOF

# ---- peers ---------------------------------------------------------------------------
start_peer() { # name port
  local name=$1 port=$2
  case $name in
    shunt|shunt-plain)
      local extra=()
      [[ $name == shunt ]] && extra=(--intercept --upstream-cacert "$RUN/ca.pem")
      spawn "$name" "$port" "$CPU_PROXY" env XDG_DATA_HOME="$RUN/xdg" "$SHUNT" proxy \
        --listen "127.0.0.1:$port" --workers 1 --grace 1 --no-admin "${extra[@]}" ;;
    mitmdump)
      spawn "$name" "$port" "$CPU_PROXY" mitmdump -q --set "confdir=$RUN/mitm" \
        --listen-host 127.0.0.1 --listen-port "$port" --mode regular \
        --set "ssl_verify_upstream_trusted_ca=$RUN/ca.pem" ;;
    haproxy)
      sed "s/@PORT@/$port/" "$RUN/haproxy.cfg" >"$RUN/haproxy-$port.cfg"
      spawn "$name" "$port" "$CPU_PROXY" haproxy -db -f "$RUN/haproxy-$port.cfg" ;;
  esac
}

load_args() { # peer scenario port -> tls_load's arguments
  case $1/$2 in
    shunt-plain/ka-plain) echo "-a 127.0.0.1:$3 -p -t 127.0.0.1:$ORIGIN_PORT -k 0" ;;
    shunt-plain/*) ;;
    haproxy/new-tls) echo "-a 127.0.0.1:$3 -s -n $NAMES -k 1" ;;
    */new-tls) echo "-a 127.0.0.1:$3 -x -t 127.0.0.1:$ORIGIN_TLS_PORT -s -n $NAMES -k 1" ;;
    shunt/ka-tls) echo "-a 127.0.0.1:$3 -x -t 127.0.0.1:$ORIGIN_TLS_PORT -s -n $NAMES -k 0" ;;
  esac
}

check_intercepts() { # port: is the leaf shunt's? (before INTERCEPT's work, tunnels stay tunnels)
  local issuer
  issuer=$(timeout 5 openssl s_client -proxy "127.0.0.1:$1" -connect "127.0.0.1:$ORIGIN_TLS_PORT" \
    -servername check.bench.test </dev/null 2>/dev/null | openssl x509 -noout -issuer 2>/dev/null || true)
  case $issuer in
    *"shunt CA"*) return 0 ;;
    *) log "WARNING: shunt does not intercept (the leaf's issuer: ${issuer:-none}): its TLS rows measure a byte tunnel"
       return 1 ;;
  esac
}

run_one() { # peer scenario port -> "rps us_per_req errors cpu_peer_pct fgn"
  local pid=${PID_OF[$1]} tck t0 t1 a0 a1 o0 o1 out
  tck=$(getconf CLK_TCK)
  t0=$(peer_ticks "$pid"); a0=$(all_ticks); o0=$(own_ticks)
  # shellcheck disable=SC2046
  out=$( (pin "$CPU_LOAD" timeout $((DURATION + 30)) "$RUN/tls_load" -c "$CONNS" -d "$DURATION" \
    $(load_args "$1" "$2" "$3")) 2>&1 | grep '^RESULT' || true)
  t1=$(peer_ticks "$pid"); a1=$(all_ticks); o1=$(own_ticks)
  [[ -n $out ]] || { echo "0 - 1 - -"; return; }
  set -- $out  # RESULT requests connections duration_us errors
  awk -v n="$2" -v d="$4" -v e="$5" -v t="$((t1 - t0))" -v h="$tck" \
      -v a="$a0 $a1" -v own="$((o1 - o0))" 'BEGIN {
    split(a, x, " ")  # busy0 total0 ncpu busy1 total1 ncpu
    fgn = x[5] > x[2] ? 100 * x[3] * ((x[4] - x[1]) - own) / (x[5] - x[2]) : 0
    if (fgn < 0) fgn = 0
    printf "%.0f %s %d %.0f %.0f\n", n / d * 1e6, n ? sprintf("%.1f", t * 1e6 / h / n) : "-", e,
           100 * t / h / (d / 1e6), fgn }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }

# ---- run -------------------------------------------------------------------------------
echo "== machine: $(nproc) cores, $(uname -r), shunt $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(openssl version | cut -d' ' -f1-2), $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3)," \
  "mitmdump $(mitmdump --version 2>/dev/null | awk '/Mitmproxy/ { print $2 }')"
echo "== load: tls_load -c $CONNS -d ${DURATION}s x$REPEAT, $NAMES SNI names; pin=$PIN load+origin cpu $CPU_LOAD, peer cpu $CPU_PROXY"
printf '%-12s %-9s %8s %15s %7s %6s %5s %5s\n' peer scenario rps_med rps_min-max us/req errors cpuP% fgn%
port=$BASE_PORT
LEAVES=""
for peer in $PEERS shunt-plain; do
  want=""
  for sc in $SCENARIOS; do [[ -n $(load_args "$peer" "$sc" 1) ]] && want+=" $sc"; done
  [[ -z $want ]] && continue
  [[ $peer == shunt-plain && " $PEERS " != *" shunt "* ]] && continue
  command -v "${peer%-plain}" >/dev/null 2>&1 || [[ $peer == shunt* ]] || { log "no $peer: skipped"; continue; }
  port=$((port + 1))
  start_peer "$peer" "$port"
  sleep 0.5
  [[ $peer == shunt ]] && { check_intercepts "$port" || true; }
  for sc in $want; do
    rows=()
    for rep in $(seq "$REPEAT"); do
      for try in 1 2 3; do
        row=$(run_one "$peer" "$sc" "$port")
        fgn=${row##* }
        [[ $fgn == - || $fgn -le $MAX_FGN || $try == 3 ]] && break
        log "$peer $sc run $rep: other processes used $fgn% of a core; run again"
      done
      rows+=("$row")
      log "$peer $sc run $rep/$REPEAT: $row (rps us/req errors cpuP% fgn%)"
    done
    rps=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f1 | median)
    lo=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f1 | sort -n | head -1)
    hi=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f1 | sort -n | tail -1)
    us=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f2 | median)
    err=$(printf '%s\n' "${rows[@]}" | awk '{ s += $3 } END { print s }')
    cp=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f4 | median)
    fg=$(printf '%s\n' "${rows[@]}" | cut -d' ' -f5 | sort -n | tail -1)
    RES[$peer/$sc]=$rps CPU[$peer/$sc]=$us
    printf '%-12s %-9s %8s %15s %7s %6s %5s %5s\n' "$peer" "$sc" "$rps" "$lo-$hi" "$us" "$err" "$cp" "$fg"
  done
  stop "$peer"
  if [[ $peer == shunt ]]; then
    LEAVES=$(grep 'TLS leaf certificates' "$RUN/shunt.out" | tail -1 || true)
  fi
done

ratio() { awk -v a="${RES[$1]:-}" -v b="${RES[$2]:-}" 'BEGIN { if (a && b) printf "%.2f", a / b; else print "-" }'; }
echo
echo "ratios (rps, medians of this run)                            goal"
printf '  new TLS connections: shunt / mitmdump       %6s     >= 3\n' "$(ratio shunt/new-tls mitmdump/new-tls)"
printf '  new TLS connections: shunt / haproxy        %6s     >= 0.5\n' "$(ratio shunt/new-tls haproxy/new-tls)"
printf '  keep-alive: intercepted / plain HTTP        %6s     >= 0.7\n' "$(ratio shunt/ka-tls shunt-plain/ka-plain)"
echo "leaf cache (shunt, over the whole run): ${LEAVES#shunt: TLS leaf certificates: }"
cat <<EOF
rps: responses per second the load generator counted (median of $REPEAT runs, -d ${DURATION}s);
  new-tls: one request per TLS connection, a full handshake with the client each (no
  resumption), SNI over $NAMES names; shunt and mitmdump also make one with the origin (which
  shunt resumes), haproxy does not. us/req: CPU time (user+system) of the peer per
  response, median.
errors: connections that failed (summed over the runs); cpuP%: busy % of the peer's CPU
  (median; near 100: the peer is the bottleneck, else the load side is and rps is a lower
  bound); fgn%: CPU other processes used during a run, in % of one core (max over the runs).
EOF
