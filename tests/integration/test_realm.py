"""test_realm.py - pairing keeps real integrated authentication working: a real MIT Kerberos
realm and Apache with mod_auth_gssapi (realm.py), driven by curl --anyauth with alice's
ticket, through shunt forward and reverse.

/bound/ is connection-bound (GssapiConnectionBound On): once a connection authenticated,
Apache serves its later requests as alice without asking. That is what a proxy must not
break (later requests on the client's connection must reach the same upstream connection,
or they are asked again) and must not abuse (a request of another client must never reach
that upstream connection, or it is served as alice). nginx with upstream keepalive does
abuse it, which the last tests show: the same check that shunt passes catches it.

Skipped only when the Debian packages are absent (scripts/deps.sh check installs them).
"""
import json
import os
import signal
import sqlite3
import subprocess
import threading

import pytest

import peers
from peers import WAIT, PeerError, free_port
import realm as krb

realm = krb.realm  # the module-scoped fixture: the realm, Apache, alice's ticket
capture_negotiate = krb.capture_negotiate

pytestmark = pytest.mark.deadline(30)

ALICE = "alice@SHUNT.TEST"
BOUND = "/bound/index.txt"
EVERY = "/every/index.txt"


def via(shunt, realm, mode, *extra):
    """(shunt, base URL, proxy URL or None) for forward or reverse mode."""
    if mode == "forward":
        px = shunt("-v", *extra)
        return px, realm.origin, px.proxy_url
    px = shunt("-v", "--reverse", realm.origin, *extra)
    return px, f"http://localhost:{px.port}", None


def by_port(lines):
    out = {}
    for l in lines:
        out.setdefault(l.port, []).append(l)
    return out


def test_the_realm_works_without_a_proxy(realm):
    """The baseline the proxied tests compare with: the handshake (401, then 200 with a
    token), then the connection-bound location serves alice without a token; a client
    without credentials gets 401."""
    n = len(realm.access_log())
    t = realm.curl(realm.origin, BOUND, BOUND)
    assert [(x.status, x.user) for x in t] == [(200, ALICE)] * 2
    anon = realm.curl(realm.origin, BOUND, negotiate=False)
    assert [(x.status, x.user) for x in anon] == [(401, "")]
    log = realm.wait_log(4, since=n)
    assert [(l.status, l.auth) for l in log] == [(401, False), (200, True), (200, False), (401, False)]


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_one_handshake_then_the_connection_is_reused(realm, shunt, mode):
    """Through shunt: the Negotiate handshake succeeds (200, served as alice); the later
    requests of the client's connection reach the same upstream connection, so the
    connection-bound location serves them without a new handshake (one 401 and one token
    in all), and the per-request location asks for each (a 401 and a token per request)."""
    px, base, proxy = via(shunt, realm, mode)
    n = len(realm.access_log())
    t = realm.curl(base, BOUND, BOUND, BOUND, EVERY, EVERY, proxy=proxy)
    assert [(x.status, x.user) for x in t] == [(200, ALICE)] * 5, t
    assert len({x.local_port for x in t}) == 1 and [x.new_connection for x in t] == [True] + [False] * 4, t

    log = realm.wait_log(8, since=n)
    ports = by_port(log)
    assert len(ports) == 1, f"one client connection, so one upstream connection: {log}"
    bound = [(l.status, l.auth) for l in log if l.path == BOUND]
    assert bound == [(401, False), (200, True), (200, False), (200, False)], log
    every = [(l.status, l.auth) for l in log if l.path == EVERY]
    assert every == [(401, False), (200, True)] * 2, log
    assert all(l.user == ALICE for l in log if l.status == 200)

    # shunt says the same: 8 exchanges, one client port, one upstream port (Apache's view)
    ex = px.wait_stderr(r"exchange conn=(\d+) client=(\d+) upstream=(\d+) ", count=8)
    assert {(m.group(1), int(m.group(2)), int(m.group(3))) for m in ex} == \
        {(ex[0].group(1), t[0].local_port, log[0].port)}


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_a_second_client_is_never_served_as_the_first(realm, shunt, mode):
    """After alice authenticated a connection at /bound/ and left, a client without
    credentials, on a connection of its own through the same shunt, is asked to
    authenticate (401), never served as alice: its requests reach an upstream connection
    of their own."""
    px, base, proxy = via(shunt, realm, mode)
    n = len(realm.access_log())
    first = realm.curl(base, BOUND, BOUND, proxy=proxy)
    assert [(x.status, x.user) for x in first] == [(200, ALICE)] * 2
    for _ in range(3):
        anon = realm.curl(base, BOUND, BOUND, proxy=proxy, negotiate=False)
        assert [(x.status, x.user) for x in anon] == [(401, "")] * 2, anon
    log = realm.wait_log(3 + 3 * 2, since=n)
    assert not [l for l in log[3:] if l.user], f"served as alice without credentials: {log}"
    assert len(by_port(log)) == 4, f"4 client connections, 4 upstream connections: {log}"


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_a_second_client_while_the_first_is_still_connected(realm, shunt, mode):
    """The same while alice's connection is still open and idle between two requests (the
    moment a pooling proxy would lend its upstream connection): the other client gets 401,
    alice's next request is still served as alice on her connection."""
    px, base, proxy = via(shunt, realm, mode)
    n = len(realm.access_log())
    done = {}

    def alice():  # two requests one second apart on one connection (--rate)
        done["t"] = realm.curl(base, BOUND, BOUND, proxy=proxy, extra=["--rate", "1/s"])

    th = threading.Thread(target=alice)
    th.start()
    try:
        realm.wait_log(2, since=n)  # alice's 401 and 200: her connection is authenticated
        anon = realm.curl(base, BOUND, proxy=proxy, negotiate=False)
    finally:
        th.join(WAIT)
    assert [(x.status, x.user) for x in anon] == [(401, "")], anon
    t = done["t"]
    assert [(x.status, x.user) for x in t] == [(200, ALICE)] * 2, t
    assert t[0].local_port == t[1].local_port and not t[1].new_connection
    log = realm.wait_log(4, since=n)
    # alice's second request came after the other client's, on her own upstream connection
    assert [(l.status, l.user) for l in log] == [(401, ""), (200, ALICE), (401, ""), (200, ALICE)], log
    assert log[0].port == log[1].port == log[3].port != log[2].port, log


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_a_capture_of_a_real_negotiate_session(realm, tmp_path, mode):
    """capture_negotiate() (realm.py) records a real session: the authentication scheme of
    both connections is Negotiate (the first authenticated, the second was only
    challenged); on the first connection, one handshake at /bound/ (401, then 200 with a
    token) and no token after it there, a 401 and a token for each /every/ request, one
    upstream connection reused after the first exchange; the second client's request
    carried no token and got 401 on an upstream connection of its own."""
    db = tmp_path / "negotiate.db"
    t = capture_negotiate(realm, db, reverse=(mode == "reverse"))
    assert [(x.status, x.user) for x in t] == [(200, ALICE)] * 5 + [(401, "")]
    out = subprocess.run([peers.SHUNT_BIN, "connections", str(db), "--json"], capture_output=True,
                         text=True, timeout=WAIT)
    assert out.returncode == 0, out.stderr
    conns = json.loads(out.stdout)["connections"]
    assert [c["auth_scheme"] for c in conns] == ["Negotiate", "Negotiate"], conns
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT conn_id, status, upstream_reused, path, "
                         "instr(req_head, 'Authorization: Negotiate ') > 0 FROM exchanges "
                         "ORDER BY started_us").fetchall()
    first, second = rows[:8], rows[8:]
    assert [(r[3], r[1], r[4]) for r in first] == [
        (BOUND, 401, 0), (BOUND, 200, 1), (BOUND, 200, 0), (BOUND, 200, 0),
        (EVERY, 401, 0), (EVERY, 200, 1), (EVERY, 401, 0), (EVERY, 200, 1)], rows
    assert len({r[0] for r in first}) == 1 and [r[2] for r in first] == [0] + [1] * 7, rows
    assert [(r[3], r[1], r[2], r[4]) for r in second] == [(BOUND, 401, 0, 0)], rows
    assert second[0][0] != first[0][0]


def diagnose_json(path, *args):
    """(exit status, findings by id) of `shunt diagnose PATH ARGS --json`."""
    p = subprocess.run([peers.SHUNT_BIN, "diagnose", str(path), *args, "--json"],
                       capture_output=True, text=True, timeout=WAIT)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, {f["id"]: f for f in json.loads(p.stdout)["findings"]}


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_diagnose_reads_a_real_negotiate_capture(realm, shunt, tmp_path, mode):
    """diagnose on real Kerberos traffic: the connection-bound location, authenticated once
    per connection, is healthy; the location that authenticates every request is a
    reauth-storm on one connection (a handshake per request, none of them needed by the
    connection); curl's Proxy-Connection to a forward proxy is not a hop-by-hop defect
    (the proxy removes it)."""
    cap = tmp_path / "real.db"
    px, base, proxy = via(shunt, realm, mode, "--capture", cap)
    t = realm.curl(base, *[BOUND] * 4, *[EVERY] * 4, proxy=proxy)  # one connection
    assert [x.status for x in t] == [200] * 8 and len({x.local_port for x in t}) == 1
    assert px.stop() == []
    rc, found = diagnose_json(cap, "~u /bound/")
    assert (rc, found) == (0, {})
    rc, found = diagnose_json(cap, "~u /every/")
    assert rc == 1 and list(found) == ["reauth-storm"], found
    f = found["reauth-storm"]
    # four handshakes at /every/, each repeating the one /bound/ did on the same connection
    assert (f["count"], f["unit"], f["impact"]["handshakes"]) == (4, "handshakes", 4)
    assert "each on a connection already authenticated" in f["what"]
    assert f["impact"]["connections"] == 0 and len(f["examples"]["connections"]) == 1
    with sqlite3.connect(f"file:{cap}?mode=ro", uri=True) as c:
        challenged = [r[0] for r in c.execute(
            "SELECT id FROM exchanges WHERE status = 401 AND path = ? ORDER BY id", (EVERY,))]
    assert len(challenged) == 4 and f["examples"]["exchanges"] == challenged[:3]
    # and the whole capture: the same storm, nothing else (no hop-by-hop-misuse for curl's
    # Proxy-Connection in forward mode)
    rc, found = diagnose_json(cap)
    assert list(found) == ["reauth-storm"], found
    if mode == "forward":
        with sqlite3.connect(f"file:{cap}?mode=ro", uri=True) as c:
            sent = c.execute("SELECT count(*) FROM exchanges WHERE "
                             "instr(req_head, 'Proxy-Connection:') > 0").fetchone()[0]
        assert sent > 0  # curl did send it: the check saw it and judged it harmless


# --------------------------------------------------------------------------- contrast


NGINX_POOL = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream realm {{ server 127.0.0.1:{origin}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://realm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def test_nginx_with_upstream_keepalive_serves_the_second_client_as_the_first(realm, tmp_path):
    """The check above is not vacuous: nginx as a reverse proxy with upstream keepalive (a
    pool of upstream connections shared by all clients) serves a client without
    credentials as alice, on the upstream connection alice authenticated."""
    nginx = peers.need("/usr/sbin/nginx") if os.path.exists("/usr/sbin/nginx") else peers.need("nginx")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / sub).mkdir()
    for _ in range(5):
        port = free_port()
        (tmp_path / "nginx.conf").write_text(NGINX_POOL.format(d=tmp_path, port=port, origin=realm.port))
        p = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                              "-e", str(tmp_path / "error.log")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            peers.wait_for(lambda: p.poll() is not None or _accepts(port), what="nginx listening")
        except AssertionError:
            p.kill()
            p.wait(WAIT)
            raise
        if p.poll() is None:
            break
    else:
        raise PeerError(f"nginx did not start: {(tmp_path / 'error.log').read_text()}")
    try:
        base = f"http://localhost:{port}"
        n = len(realm.access_log())
        first = realm.curl(base, BOUND, BOUND)
        assert [(x.status, x.user) for x in first] == [(200, ALICE)] * 2
        anon = realm.curl(base, BOUND, negotiate=False)
        log = realm.wait_log(4, since=n)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(WAIT)
    assert [(x.status, x.user) for x in anon] == [(200, ALICE)], \
        f"nginx no longer shares its pool? {anon} {log}"
    assert log[3].port == log[1].port and not log[3].auth, log


def _accepts(port):
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
