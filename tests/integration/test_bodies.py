"""Large bodies stream through: 200 MiB each way, every byte checked, the proxy's peak
resident memory (VmHWM) far below the body size."""
import hashlib
import select
import threading

import peers
from peers import curl, get, response

MIB = 1 << 20
# A streaming proxy holds a few buffers per connection; 200 MiB must not show up in RSS.
# Sanitizer builds carry shadow memory and a quarantine: there only the growth counts.
SANITIZED = "asan" in peers.SHUNT_BIN
MAX_HWM = 64 * MIB
MAX_GROWTH = 48 * MIB


def _assert_memory_bounded(px, baseline_kib):
    hwm = px.vm_hwm_kib() * 1024
    assert hwm - baseline_kib * 1024 < MAX_GROWTH, f"VmHWM grew by {(hwm - baseline_kib * 1024) / MIB:.1f} MiB"
    if not SANITIZED:
        assert hwm < MAX_HWM, f"VmHWM {hwm / MIB:.1f} MiB"


def test_200mib_response_body_streams_through_with_bounded_memory(shunt, nginx):
    px = shunt()
    baseline = px.vm_hwm_kib()
    h = hashlib.sha256()
    with px.client() as c:
        c.send(get(nginx.host, "/files/big.bin"))
        m = peers.read_message(c.r, sink=h.update)  # Python hashing: a reader slower than nginx
        assert m.status == 200 and int(m.get("content-length")) == peers.BIG_SIZE
        assert h.hexdigest() == nginx.big_sha256
        # the connection is still usable afterwards
        assert c.exchange(get(nginx.host, "/small")).body == b"hello from nginx\n"
    _assert_memory_bounded(px, baseline)


def test_200mib_request_body_streams_through_with_bounded_memory(shunt, origin, nginx):
    def hash_upload(conn):
        conn.r.record = None  # don't keep 200 MiB in the test process
        head = conn.recv_head()
        if head.get("expect"):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        n = int(head.get("content-length"))
        h, got = hashlib.sha256(), 0
        while got < n:
            d = conn.r.read_some()
            if not d:
                break
            d = d[: n - got]
            h.update(d)
            got += len(d)
        conn.send(response(body=b"%d %s" % (got, h.hexdigest().encode())))

    origin.handler = hash_upload
    px = shunt()
    baseline = px.vm_hwm_kib()
    big = nginx.dir / "www" / "files" / "big.bin"
    r = curl("-x", px.proxy_url, "-T", str(big), origin.url + "/upload", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"%d %s" % (peers.BIG_SIZE, nginx.big_sha256.encode())
    _assert_memory_bounded(px, baseline)


def _send_until_blocked(sock, total, stall=1.0):
    """Sends up to <total> bytes without blocking; returns how many went out before the
    peer stopped taking them for <stall> seconds (or all of them)."""
    sock.setblocking(False)
    chunk = b"b" * 65536
    sent = 0
    while sent < total:
        if not select.select([], [sock], [], stall)[1]:
            break  # nobody reads: backpressure reached us
        try:
            sent += sock.send(chunk[: min(len(chunk), total - sent)])
        except BlockingIOError:
            continue
    sock.setblocking(True)
    return sent


def test_slow_client_backpressures_the_origin(shunt, origin):
    total = 256 * MIB
    progress = {}
    stalled = threading.Event()

    def push(conn):
        conn.recv_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        progress["stalled_at"] = _send_until_blocked(conn.sock, total)
        stalled.set()
        _send_until_blocked(conn.sock, total - progress["stalled_at"], stall=peers.WAIT)

    origin.handler = push
    px = shunt()
    baseline = px.vm_hwm_kib()
    with px.client() as c:
        c.send(get(origin.host, "/"))  # and read nothing yet
        assert stalled.wait(peers.WAIT * 2)
        assert progress["stalled_at"] < 64 * MIB, "the proxy kept reading while the client did not"
        _assert_memory_bounded(px, baseline)
        got = []
        m = peers.read_message(c.r, sink=lambda d: got.append(len(d)))
        assert sum(got) == total and m.status == 200


def test_slow_origin_backpressures_the_client(shunt, origin):
    total = 256 * MIB
    release = threading.Event()

    def slow_reader(conn):
        conn.r.record = None
        conn.recv_head()
        release.wait(peers.WAIT * 2)
        n = 0
        while n < total:
            d = conn.r.read_some()
            if not d:
                break
            n += len(d)
        conn.send(response(body=b"%d" % n))

    origin.handler = slow_reader
    px = shunt()
    baseline = px.vm_hwm_kib()
    try:
        with px.client() as c:
            c.send(get(origin.host, "/up", b"Content-Length: %d\r\n" % total, method=b"PUT"))
            sent = _send_until_blocked(c.sock, total)
            assert sent < 64 * MIB, "the proxy kept reading while the origin did not"
            _assert_memory_bounded(px, baseline)
            release.set()
            sent += _send_until_blocked(c.sock, total - sent, stall=peers.WAIT)
            assert sent == total
            assert c.response().body == b"%d" % total
    finally:
        release.set()
