#!/bin/sh
# scripts/deps.sh - make sure the Debian packages a make target needs are installed.
# usage: scripts/deps.sh build|check|demo|bench
# Installs what is missing with apt-get when run as root, saying what it does; otherwise
# prints the exact install line and fails. Only Debian packages, nothing vendored.
set -eu

build="gcc make pkg-config libc6-dev libuv1-dev libsqlite3-dev libjansson-dev libpcre2-dev liblua5.4-dev libssl-dev"
check="$build libcmocka-dev libnss3-tools python3 python3-pytest curl nginx-light openssl tshark clang libclang-rt-14-dev python3-websockets procps nodejs npm chromium krb5-kdc krb5-admin-server krb5-user apache2 libapache2-mod-auth-gssapi"
demo="$build curl nginx-light"
bench="$build wrk nginx-light haproxy tinyproxy mitmproxy privoxy curl linux-perf"

case "${1:-build}" in
build) want=$build ;;
check) want=$check ;;
demo) want=$demo ;;
bench) want=$bench ;;
*) echo "usage: $0 build|check|demo|bench" >&2; exit 2 ;;
esac

# The integration tests reach their peers by the name localhost (Kerberos needs a host name:
# HTTP/localhost). A Debian root made by debootstrap has no /etc/hosts (the installer writes
# one, debootstrap does not), so there localhost does not resolve: add Debian's lines.
if [ "${1:-build}" = check ] && ! getent hosts localhost >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "shunt: the name localhost does not resolve (no line for it in /etc/hosts)" >&2
        echo "shunt: add one with: echo '127.0.0.1 localhost' | sudo tee -a /etc/hosts" >&2
        exit 1
    fi
    echo "shunt: the name localhost does not resolve; adding Debian's localhost lines to /etc/hosts"
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >>/etc/hosts
fi

missing=""
for p in $want; do
    # What matters of some packages is a command that others provide too: nginx-light,
    # -core and -full all give /usr/sbin/nginx; NodeSource's nodejs bundles npm (and
    # conflicts with Debian's npm package).
    case $p in
    nginx-light) [ -x /usr/sbin/nginx ] && continue ;;
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "shunt: missing Debian packages:$missing" >&2
    echo "shunt: install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "shunt: installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $missing; then
    echo "shunt: refreshing the package lists (apt-get update) and trying again"
    apt-get update
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing
fi
