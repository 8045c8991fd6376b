"""test_hostile_proxy.py - issue 10: what clients can make the proxy do to itself. Many origins
on one connection, thousands of pipelined requests the proxy answers itself, a client that
never reads its answers, and limits that must be refused rather than silently not hold."""
import os
import socket
import subprocess
import threading
import time

import pytest

import peers
from peers import OK, get

N_PIPELINED = 10_000
# A read brings up to 64 KiB: some 2,500 of these short requests (reverse mode, origin-form),
# which the proxy then answers one after the other.
TINY = b"GET / HTTP/1.1\r\nHost:a\r\n\r\n"


def _hosts_wrap(tmp_path, lines):
    """A wrapper that runs shunt in a mount namespace of its own where /etc/hosts is <lines>
    (the machine's file is left alone); None when this machine cannot make one."""
    hosts = tmp_path / "hosts"
    hosts.write_text(lines)
    wrap = ["unshare", "-m", "sh", "-c", f'mount --bind "{hosts}" /etc/hosts && exec "$@"', "sh"]
    try:
        out = subprocess.run(wrap + ["getent", "ahosts", "localhost"], capture_output=True,
                             timeout=peers.WAIT, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    if out.returncode != 0:
        return None, None
    stream = [l.split()[0] for l in out.stdout.splitlines() if "STREAM" in l]
    return wrap, stream


def test_twenty_origins_on_one_connection_the_last_falling_back_to_its_second_address(
        shunt, origins, tmp_path):
    """Browsers send many origins over one proxy connection. The proxy keeps a table of them;
    with it full, a name whose first address refuses used to write past the table's end
    (an address fallback opened the new upstream before closing the failed one)."""
    wrap, order = _hosts_wrap(tmp_path, "127.0.0.1 localhost\n::1 localhost\n")
    if wrap is None or len(order) != 2:
        pytest.skip("cannot give shunt a localhost with two addresses (unshare -m)")
    first, second = order
    # the origin listens on the second address only, on a port free on the first: the
    # first attempt is refused, the second succeeds
    late = origins(ip=second)
    fam = socket.AF_INET6 if ":" in first else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((first, late.port))
        except OSError:
            pytest.skip(f"port {late.port} is taken on {first} too")
    many = [origins() for _ in range(19)]
    px = shunt(wrap=wrap)
    with px.client() as c:
        for i, o in enumerate(many):
            assert c.exchange(get(o.host, f"/{i}")).raw == OK, i
        assert c.exchange(get(f"localhost:{late.port}", "/last")).raw == OK
        # the table still works: an origin evicted earlier is opened again
        assert c.exchange(get(many[0].host, "/again")).raw == OK
    late.wait_requests(1)
    assert b"GET /last HTTP/1.1\r\n" in late.received
    many[0].wait_requests(2)


def _pipeline(px, requests, n_answers):
    """Sends <requests> at once from one thread while another reads; returns the responses
    (read until EOF or <n_answers>)."""
    got = []
    with px.client() as c:
        t = threading.Thread(target=c.send, args=(requests,), daemon=True)
        t.start()
        while len(got) < n_answers:
            m = c.response()
            if m is None:
                break
            got.append(m)
        t.join(peers.WAIT)
    return got


@pytest.mark.deadline(120)
def test_ten_thousand_pipelined_requests_answered_by_respond(shunt, origin, tmp_path):
    """Each answer the proxy gives itself completes its exchange inside the call that started
    it; completion used to call back into request processing, one stack frame deeper per
    pipelined request, until the stack overflowed (~1,400 requests on 8 MiB)."""
    page = tmp_path / "gone.txt"
    page.write_bytes(b"gone")
    px = shunt("--reverse", origin.url, "--respond", f"/~q/410/{page}", "--workers", "1")
    reqs = TINY * N_PIPELINED
    got = _pipeline(px, reqs, N_PIPELINED)
    assert len(got) == N_PIPELINED
    assert all(m.status == 410 and m.body == b"gone" for m in got)
    assert origin.conns == []  # nothing reached the server
    with px.client() as c:  # and the proxy still answers
        assert c.exchange(TINY).status == 410


@pytest.mark.deadline(120)
def test_ten_thousand_pipelined_requests_answered_by_map_local(shunt, origin, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_bytes(b"local")
    px = shunt("--reverse", origin.url, "--map-local", f"|~q|/|{site}/a.txt", "--workers", "1")
    reqs = TINY * N_PIPELINED
    got = _pipeline(px, reqs, N_PIPELINED)
    assert len(got) == N_PIPELINED
    assert all(m.status == 200 and m.body == b"local" for m in got)
    assert origin.conns == []


@pytest.mark.deadline(120)
def test_pipelined_requests_then_one_the_parser_refuses(shunt, origin, tmp_path):
    """Every good request is answered, then the bad one gets a 400 and the connection ends;
    a pipeline of only bad requests gets one 400."""
    page = tmp_path / "p.txt"
    page.write_bytes(b"p")
    px = shunt("--reverse", origin.url, "--respond", f"/~q/200/{page}", "--workers", "1")
    bad = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    reqs = TINY * (N_PIPELINED - 1) + bad
    got = _pipeline(px, reqs, N_PIPELINED)
    assert len(got) == N_PIPELINED
    assert all(m.status == 200 for m in got[:-1])
    assert got[-1].status == 400 and b"MULTIPLE_HOST" in got[-1].body
    got = _pipeline(px, bad * N_PIPELINED, N_PIPELINED)
    assert [m.status for m in got] == [400]


@pytest.mark.deadline(60)
def test_a_client_that_never_reads_its_answers_does_not_grow_the_proxy(shunt, origin, tmp_path):
    """A client that pipelines requests the proxy answers itself and never reads: the proxy
    stops taking requests while its answers wait to be written, instead of queueing answers
    without bound (64 KiB each here)."""
    page = tmp_path / "big.bin"
    page.write_bytes(b"x" * 65536)
    px = shunt("--respond", f"/~u big/200/{page}", "--workers", "1")
    before = px.vm_hwm_kib()
    req = get(origin.host, "/big")
    c = socket.create_connection(("127.0.0.1", px.port))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.settimeout(2.0)
    sent = 0
    chunk = req * 1000
    try:
        while sent < 200 * len(chunk):  # 200,000 requests: 12 GiB of answers if all queued
            c.sendall(chunk)
            sent += len(chunk)
    except socket.timeout:
        pass  # the proxy stopped reading: what the test wants
    grown = px.vm_hwm_kib() - before
    c.close()
    assert sent < 200 * len(chunk), "the proxy read every request of a client that never reads"
    assert grown < 256 * 1024, f"the proxy grew by {grown} KiB for one client that never reads"
    with px.client() as c2:
        assert c2.exchange(get(origin.host, "/after")).raw == OK


def test_a_body_limit_the_capture_queue_cannot_hold_is_refused(shunt, tmp_path):
    """An exchange is one record of the capture queue; a body limit larger than the queue
    holds for one exchange would drop every large exchange whole."""
    px = shunt("--capture", tmp_path / "c.db", "--body-limit", "100m", wait_listening=False)
    assert px.wait_exit() == 2
    err = px.stderr.strip()
    assert len(err.splitlines()) == 1 and "--body-limit 104857600 is over" in err, err
    assert not (tmp_path / "c.db").exists()


# ----------------------------------------------------------------------------- where requests may go

ADD_SERVER = 'local add = option("Add Server Header", false)\n'


def _admin_port(px):
    line = peers.wait_for(lambda: next((l for l in px.stdout_lines if "admin API on" in l), None),
                          what="the admin API line")
    return int(line.rsplit(":", 1)[1])


@pytest.mark.parametrize("target", ["127.0.0.1:{port}", "localhost:{port}", "127.9.8.7:{port}",
                                    "0.0.0.0:{port}", "[::1]:{port}", "[::ffff:127.0.0.1]:{port}"])
def test_a_proxy_for_other_machines_refuses_loopback_upstreams(shunt, origin, target, tmp_path):
    """With a listener beyond loopback (here 0.0.0.0, clients limited to loopback by --allow so
    that the test stays on this machine) clients must not reach this machine's loopback
    services through the proxy: 403 with the reason, recorded, nothing connected."""
    cap = tmp_path / "c.db"
    px = shunt("--allow", "127.0.0.0/8", "--capture", cap, listen="0.0.0.0:0")
    host = target.format(port=origin.port)
    with px.client() as c:
        r = c.exchange(get(host, "/secret"))
    assert r.status == 403
    assert b"this proxy serves other machines" in r.body and b"--allow-loopback-upstream" in r.body
    assert origin.conns == []
    px.signal(2)
    assert px.wait_exit() == 0
    out = subprocess.run([peers.SHUNT_BIN, "sessions", cap], capture_output=True, text=True,
                         timeout=peers.WAIT)
    assert " 403 " in out.stdout and "/secret" in out.stdout, out.stdout


def test_allow_loopback_upstream_lets_them_through(shunt, origin):
    px = shunt("--allow", "127.0.0.0/8", "--allow-loopback-upstream", listen="0.0.0.0:0")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/")).raw == OK
    origin.wait_requests(1)


def test_a_loopback_proxy_and_a_reverse_origin_on_loopback_stay_allowed(shunt, origin):
    """The checks are about what a client chooses: a loopback listener serves this machine's
    own users; a --reverse origin is the user's."""
    with shunt().client() as c:
        assert c.exchange(get(origin.host, "/")).raw == OK
    px = shunt("--reverse", origin.url, "--allow", "127.0.0.0/8", listen="0.0.0.0:0")
    with px.client() as c:
        assert c.exchange(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n").raw == OK
    origin.wait_requests(2)


def test_map_remote_to_loopback_is_refused_for_other_machines(shunt, origin, origins):
    """A --map-remote result is where the request goes: it is checked like a client's target
    (the message names the mapped address, not the requested one)."""
    other = origins()
    px = shunt("--allow", "127.0.0.0/8", "--map-remote", f"|~u /m|//[^/]+/|//127.0.0.1:{other.port}/",
               listen="0.0.0.0:0")
    with px.client() as c:
        r = c.exchange(get("localhost:1", "/m"))
    assert r.status == 403 and f"127.0.0.1:{other.port}".encode() in r.body, r.raw
    assert other.conns == []


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "0.0.0.0:0"])
def test_the_admin_api_is_never_an_upstream(shunt, tmp_path, listen):
    """A client of the proxy would otherwise switch the rules through the token-less admin API
    on loopback (curl -x PROXY -X PUT http://127.0.0.1:8889/api/options/...)."""
    rules = tmp_path / "r.lua"
    rules.write_text(ADD_SERVER)
    px = shunt("--rules", rules, "--allow", "127.0.0.0/8", "--allow-loopback-upstream",
               listen=listen)
    port = _admin_port(px)
    body = b'{"on": true}'
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"0.0.0.0:{port}"):
        put = get(host, "/api/options/Add%20Server%20Header",
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body),
                  method=b"PUT") + body
        with px.client() as c:
            r = c.exchange(put)
        assert r.status == 403 and b"is shunt's own admin API" in r.body, (host, r.raw)
    with peers.Client(port) as c:  # directly, the option is still off
        c.send(b"GET /api/options HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        assert b'"on": false' in c.response().body.replace(b'":false', b'": false')


def test_map_local_serves_nothing_a_link_leads_out_of_its_folder_to(shunt, origin, tmp_path):
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    (site / "sub" / "in.txt").write_bytes(b"inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"never served")
    (outside / "index.html").write_bytes(b"never served either")
    os.symlink(outside / "secret.txt", site / "file-link.txt")   # a link to a file outside
    os.symlink(outside, site / "dir-link")                        # a link to a folder outside
    os.symlink("/etc/passwd", site / "passwd")
    os.symlink(site / "sub" / "in.txt", site / "inner-link.txt")  # a link that stays inside
    px = shunt("--map-local", f"|~u /static/|/static/|{site}")
    with px.client() as c:
        for path in ("/static/file-link.txt", "/static/dir-link/secret.txt", "/static/dir-link",
                     "/static/dir-link/", "/static/passwd"):
            r = c.exchange(get(origin.host, path))
            assert r.status == 404 and b"never" not in r.body and b"root:" not in r.body, path
        assert c.exchange(get(origin.host, "/static/inner-link.txt")).body == b"inside"
        assert c.exchange(get(origin.host, "/static/sub/in.txt")).body == b"inside"
    assert origin.conns == []


def test_map_local_on_a_folder_reached_by_a_link_still_serves_it(shunt, origin, tmp_path):
    """The folder itself may be named through a link (a user's ~/site -> /srv/site)."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.txt").write_bytes(b"a")
    os.symlink(real, tmp_path / "named")
    px = shunt("--map-local", f"|~u /s/|/s/|{tmp_path / 'named'}")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/s/a.txt")).body == b"a"


HOST_FROM_PATH = r"http://\1.localhost:{port}/"
PORT_FROM_PATH = r"http://localhost:\1/"


@pytest.mark.parametrize("segment,into,why", [
    ("h:80", HOST_FROM_PATH, b"a character not allowed in a host"),
    ("a@b", HOST_FROM_PATH, b"user info in the host"),
    ("[x", HOST_FROM_PATH, b"an unclosed [ in the host"),
    ("99999", PORT_FROM_PATH, b"a port out of range"),
    ("8a", PORT_FROM_PATH, b"a malformed port"),
    ("0", PORT_FROM_PATH, b"a port out of range"),
])
def test_map_remote_results_are_valid_urls_or_refused(shunt, origins, segment, into, why):
    """A --map-remote result is checked as a URL before it is used: here the regex moves a
    path segment (the client's bytes) into the authority, and a result that is not a valid
    URL is refused with 400 naming the rule, nothing connected."""
    a, b = origins(), origins()
    px = shunt("--reverse", a.url, "--map-remote",
               r"|^http://[^/]*/([^/]*)/|" + into.format(port=b.port))
    with px.client() as c:
        r = c.exchange(b"GET /" + segment.encode() + b"/p HTTP/1.1\r\nHost: h\r\n\r\n")
    assert r.status == 400, r.raw
    assert b"--map-remote #1 made an invalid URL: " + why in r.body, r.body
    assert a.conns == [] and b.conns == []


@pytest.mark.parametrize("host", [b"x y", b"x\tz", b"a@b"])
def test_a_host_that_would_make_a_bad_url_is_refused_first(shunt, origins, host):
    """In reverse mode the URL the regex sees carries the client's Host: an invalid Host is
    refused before any rule runs (BAD_HOST), so none of its bytes reach a request line."""
    a, b = origins(), origins()
    px = shunt("--reverse", a.url, "--map-remote", rf"|^http://([^/]*)/|http://\1.localhost:{b.port}/")
    with px.client() as c:
        r = c.exchange(b"GET /p HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert r.status == 400 and b"BAD_HOST" in r.body, r.raw
    assert a.conns == [] and b.conns == []


@pytest.mark.parametrize("target", ["127.0.0.1:{port}", "localhost:{port}", "0.0.0.0:{port}"])
def test_a_request_to_the_proxy_itself_is_refused_not_looped(shunt, target):
    """Forwarded to itself, a request came back as the proxy's own (answered with a puzzling
    400 about origin-form) and a CONNECT tunnelled into the proxy, one connection pair per
    hop: now 508 Loop Detected naming the cause, for a GET and for a CONNECT."""
    px = shunt()
    host = target.format(port=px.port)
    with px.client() as c:
        r = c.exchange(get(host, "/"))
    assert r.status == 508 and b"is this proxy itself" in r.body, r.raw
    with px.client() as c:
        c.send(f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        r = c.response(method=b"CONNECT")
    assert r.status == 508, r.raw
    with px.client() as c:  # and it still works
        assert c.exchange(get(host.replace(str(px.port), "1"), "/")).status == 502
