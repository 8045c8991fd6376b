"""peers.py - what the integration tests drive: the shunt binary, a scripted origin, nginx,
tshark, and raw-socket clients. Loopback only; every wait is bounded by WAIT seconds.

The fixtures in conftest.py build these and tear them down; tests import the helpers
(Client, http parsing, free_port) from here.
"""
import hashlib
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHUNT_BIN = os.environ.get("SHUNT_BIN", str(ROOT / "build" / "shunt"))
WAIT = 10.0  # seconds: the bound of any single wait for an event

# What a sanitizer prints when it finds something (ASan, LSan, UBSan).
SANITIZER_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
    r"ThreadSanitizer|MemorySanitizer"
)
LISTEN_RE = re.compile(r"^shunt: listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)$")


class PeerError(AssertionError):
    """A peer (nginx, tshark, the binary) is missing or did not start: the test fails."""


def free_port(host="127.0.0.1"):
    """A port nothing listens on right now (bound then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def need(path_or_name):
    """The absolute path of a peer program, or a test failure that says what is missing."""
    import shutil

    p = shutil.which(path_or_name) or (path_or_name if os.access(path_or_name, os.X_OK) else None)
    if not p:
        raise PeerError(
            f"{path_or_name} is not installed: run `scripts/deps.sh check` (as root it installs it)"
        )
    return p


def wait_for(pred, timeout=WAIT, what="condition", interval=0.01):
    """Polls pred() until true (for states no peer notifies, e.g. a process's exit or a
    closed listener); raises AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------- reading HTTP


class Reader:
    """Buffered reads over a socket; every byte read is appended to <record> if given.
    Sets .eof to 'FIN' (recv returned b'') or 'RST' (ECONNRESET) when the peer ends."""

    def __init__(self, sock, record=None, on_data=None):
        self.sock = sock
        self.buf = bytearray()
        self.record = record
        self.on_data = on_data
        self.eof = None

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(262144)
        except ConnectionResetError:
            self.eof = "RST"
            if self.on_data:
                self.on_data(b"")
            return False
        if not d:
            self.eof = "FIN"
            if self.on_data:
                self.on_data(b"")
            return False
        self.buf += d
        if self.record is not None:
            self.record += d
        if self.on_data:
            self.on_data(d)
        return True

    def read_until(self, sep):
        """Bytes through <sep>; b'' on EOF with nothing buffered; raises EOFError if the
        peer ended in the middle."""
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[: i + len(sep)])
                del self.buf[: i + len(sep)]
                return out
            if not self._fill():
                if not self.buf:
                    return b""
                raise EOFError(f"peer ended ({self.eof}) inside a message: {bytes(self.buf)[:200]!r}")

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"peer ended ({self.eof}) after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self):
        """Whatever is buffered, or the next recv; b'' at EOF."""
        if not self.buf:
            self._fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_to_eof(self):
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_eof(self):
        """Reads until the peer ends; returns (extra bytes, 'FIN'|'RST')."""
        extra = self.read_to_eof()
        return extra, self.eof


class Message:
    """A parsed HTTP message: raw wire bytes, start line, headers (name, value) in order."""

    def __init__(self, raw, start, headers, body):
        self.raw = raw
        self.start = start
        self.headers = headers
        self.body = body

    @property
    def status(self):
        return int(self.start.split(b" ")[1])

    def get(self, name):
        vals = self.all(name)
        return vals[0] if vals else None

    def all(self, name):
        n = name.lower().encode() if isinstance(name, str) else name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def __repr__(self):
        return f"Message({self.raw[:300]!r}{'...' if len(self.raw) > 300 else ''})"


def parse_head(head):
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k, v.strip(b" \t")))
    return lines[0], headers


def _read_chunked(r):
    raw = bytearray()
    body = bytearray()
    while True:
        line = r.read_until(b"\r\n")
        if not line:
            raise EOFError("peer ended before a chunk size line")
        raw += line
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the empty line
                t = r.read_until(b"\r\n")
                if not t:
                    raise EOFError("peer ended inside the trailer section")
                raw += t
                if t == b"\r\n":
                    return bytes(raw), bytes(body)
        data = r.read_exact(size + 2)
        raw += data
        body += data[:-2]


def read_message(r, request=False, method=None, sink=None):
    """Reads one HTTP message from Reader <r>; None if the peer ended before any byte.
    Requests: body by Content-Length or chunked. Responses: also none for HEAD/1xx/204/304,
    else until close. <sink>(bytes) receives Content-Length body bytes instead of keeping
    them (for large bodies); the body in the Message is then b''."""
    head = r.read_until(b"\r\n\r\n")
    if not head:
        return None
    start, headers = parse_head(head)
    msg = Message(head, start, headers, b"")
    te = b",".join(v for k, v in headers if k.lower() == b"transfer-encoding").lower()
    cl = [v for k, v in headers if k.lower() == b"content-length"]
    if not request:
        status = int(start.split(b" ")[1])
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return msg
        if method == "CONNECT" and 200 <= status < 300:
            return msg
    if te.endswith(b"chunked"):
        raw, body = _read_chunked(r)
        msg.raw += raw
        msg.body = body
    elif cl:
        n = int(cl[0])
        if sink is not None:
            h = 0
            while h < n:
                if not r.buf:
                    if not r._fill():
                        raise EOFError(f"peer ended ({r.eof}) after {h} of {n} body bytes")
                take = min(n - h, len(r.buf))
                sink(bytes(r.buf[:take]))
                del r.buf[:take]
                h += take
        else:
            msg.body = r.read_exact(n)
            msg.raw += msg.body
    elif not request:
        msg.body = r.read_to_eof()
        msg.raw += msg.body
    return msg


# ----------------------------------------------------------------------------- curl


def curl(*args, timeout=WAIT * 3):
    """Runs curl with <args>; returns the CompletedProcess (bytes)."""
    return subprocess.run([need("curl"), "-sS", "--max-time", str(int(timeout))] + list(args),
                          capture_output=True, timeout=timeout + 5, stdin=subprocess.DEVNULL)


# ----------------------------------------------------------------------------- raw client


class Client:
    """A raw TCP client with a Reader, for exact bytes."""

    def __init__(self, port, host="127.0.0.1", timeout=WAIT):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.port = self.sock.getsockname()[1]
        self.r = Reader(self.sock)

    def send(self, data):
        self.sock.sendall(data)

    def response(self, method=None):
        """The next response (a final one, or a 1xx); None at EOF."""
        return read_message(self.r, method=method)

    def final_response(self, method=None):
        """Skips 1xx responses; returns (list of 1xx messages, final message)."""
        interim = []
        while True:
            m = read_message(self.r, method=method)
            if m is None or not 100 <= m.status < 200 or m.status == 101:
                return interim, m
            interim.append(m)

    def exchange(self, data, method=None):
        self.send(data)
        return self.response(method)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        """Closes with SO_LINGER {1, 0}: the kernel sends RST."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def wait_eof(self):
        """(bytes still to come, 'FIN'|'RST')."""
        return self.r.wait_eof()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def get(url_host, path="/", extra=b"", version=b"1.1", method=b"GET", body=b""):
    """An absolute-form request to http://url_host/path with Host; <extra> are more header
    lines (each with its CRLF)."""
    h = url_host.encode() if isinstance(url_host, str) else url_host
    return (
        method + b" http://" + h + path.encode() + b" HTTP/" + version + b"\r\n"
        b"Host: " + h + b"\r\n" + extra + b"\r\n" + body
    )


def origin_form(request):
    """What a forward proxy sends for the absolute-form <request>: the same bytes with the
    request target in origin-form."""
    line, rest = request.split(b"\r\n", 1)
    method, target, version = line.split(b" ")
    path = b"/" + target.split(b"://", 1)[1].split(b"/", 1)[1] if target.count(b"/") >= 3 else b"/"
    return method + b" " + path + b" " + version + b"\r\n" + rest


def response(status=b"200 OK", headers=(), body=b"", cl=True):
    """A response; Content-Length added when <cl>."""
    out = b"HTTP/1.1 " + status + b"\r\n"
    for h in headers:
        out += h + b"\r\n"
    if cl:
        out += b"Content-Length: %d\r\n" % len(body)
    return out + b"\r\n" + body


# ----------------------------------------------------------------------------- shunt


class Process:
    """A shunt process (`shunt proxy`, `shunt lab origin`...) whose first stdout line says
    where it listens. stdout and stderr are drained by threads; .stderr is the text so far.
    Subclasses set .name (for messages) and .listen_re (the listening line)."""

    name = "shunt"
    listen_re = None

    def __init__(self, argv, wait_listening=True, env=None, wrap=()):
        """<wrap> is a command that execs the rest of its arguments (it must exec, so that
        the process is shunt itself): `unshare -m sh -c '...; exec "$@"' sh`, say."""
        if not os.access(SHUNT_BIN, os.X_OK):
            raise PeerError(f"{SHUNT_BIN} does not exist: build it with `make`")
        self.args = list(wrap) + [SHUNT_BIN] + [str(a) for a in argv]
        e = dict(os.environ)
        # A token exported for `shunt ctl` in the developer's shell would be taken by every
        # proxy of the suite (shunt proxy reads it too); a test that wants one passes env.
        e.pop("SHUNT_ADMIN_TOKEN", None)
        # ASan: report leaks and errors on stderr, where teardown looks for them.
        e.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            e.update(env)
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e
        )
        self.pid = self.proc.pid
        self._out = []
        self._err = bytearray()
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._drain_out, daemon=True),
            threading.Thread(target=self._drain_err, daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.host = None
        self.port = None
        self.signalled = None  # the signal teardown or a test sent
        if wait_listening:
            self.await_listening()

    def _drain_out(self):
        for line in self.proc.stdout:
            with self._cond:
                self._out.append(line.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._out.append(None)  # EOF marker
            self._cond.notify_all()

    def _drain_err(self):
        while True:
            d = self.proc.stderr.read1(65536)
            if not d:
                break
            with self._cond:
                self._err += d
                self._cond.notify_all()

    def await_listening(self):
        """Reads the listening line (within WAIT) into .listen_line, .host, .port."""
        deadline = time.monotonic() + WAIT
        with self._cond:
            while not self._out:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerError(f"{self.name} printed no listening line within {WAIT}s: "
                                    f"{self.args}\nstderr: {self.stderr}")
                self._cond.wait(left)
            line = self._out[0]
        if line is None:
            self.proc.wait(WAIT)
            raise PeerError(f"{self.name} exited ({self.proc.returncode}) before listening: "
                            f"{self.args}\nstderr: {self.stderr}")
        m = self.listen_re.match(line)
        assert m, f"first stdout line of {self.name} is not its listening line: {line!r}"
        self.listen_line = line
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))

    @property
    def stdout_lines(self):
        with self._cond:
            return [l for l in self._out if l is not None]

    @property
    def stderr(self):
        with self._cond:  # re-entrant: Condition uses an RLock
            return self._err.decode(errors="replace")

    def wait_stderr(self, pattern, count=1, timeout=WAIT):
        """Waits until <pattern> (regex) matches <count> lines of stderr; returns the matches."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ms = [m for m in (rx.search(l) for l in self._err.decode(errors="replace").splitlines()) if m]
                if len(ms) >= count:
                    return ms
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.name} stderr has {len(ms)} lines matching {pattern!r}, want {count}, "
                        f"after {timeout}s:\n{self._err.decode(errors='replace')}"
                    )
                self._cond.wait(left)

    def client(self, host=None):
        return Client(self.port, host or ("::1" if self.host == "::1" else "127.0.0.1"))

    def signal(self, sig):
        self.signalled = sig
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=WAIT):
        """The exit status, once the process exited and all its output was read."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within {timeout}s")
        for t in self._threads:
            t.join(WAIT)
        return rc

    def vm_hwm_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc/PID/status")

    def stop(self):
        """Teardown: SIGTERM (unless already signalled or exited), wait; returns a list of
        problems (empty when it exited 0 with no sanitizer report)."""
        problems = []
        if self.proc.poll() is None and self.signalled is None:
            self.signal(signal.SIGTERM)
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            problems.append(f"{self.name} (pid {self.pid}) still running {WAIT}s after "
                            f"{signal.Signals(self.signalled).name}; killed")
            self.proc.kill()
            self.proc.wait(WAIT)
        for t in self._threads:
            t.join(WAIT)
        rc = self.proc.returncode
        if rc < 0 and not (rc == -signal.SIGKILL and problems):
            problems.append(f"{self.name} crashed: killed by signal {signal.Signals(-rc).name}")
        elif rc != 0 and self.port is not None:  # it was up: only a clean exit 0 will do
            how = f"after {signal.Signals(self.signalled).name}" if self.signalled else "by itself"
            problems.append(f"{self.name} exited with status {rc} {how}")
        if SANITIZER_RE.search(self.stderr):
            problems.append("a sanitizer reported an error")
        if problems:
            problems.append(f"command: {' '.join(self.args)}\nstderr:\n{self.stderr[-6000:]}")
        return problems

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        problems = self.stop()
        if problems and exc[0] is None:
            raise AssertionError("\n".join(problems))


class Shunt(Process):
    """A running `shunt proxy`."""

    name = "shunt"
    listen_re = LISTEN_RE

    def __init__(self, args, listen="127.0.0.1:0", wait_listening=True, env=None, wrap=()):
        args = [str(a) for a in args]
        if not any(a in ("--admin", "--no-admin") or a.startswith("--admin=") for a in args):
            # every proxy of the suite gets an admin API of its own, on a free port (the
            # default 127.0.0.1:8889 would be shared by tests running side by side)
            args = ["--admin", "127.0.0.1:0"] + args
        workers = os.environ.get("SHUNT_TEST_WORKERS")
        if workers and "--workers" not in args:
            # the ThreadSanitizer run: every proxy gets this many loop threads, whatever the
            # machine's cores, so that two workers share the process
            args = ["--workers", workers] + args
        super().__init__(["proxy"] + (["--listen", listen] if listen else []) + args,
                         wait_listening, env, wrap)

    @property
    def proxy_url(self):
        h = f"[{self.host}]" if ":" in (self.host or "") else "127.0.0.1"
        return f"http://{h}:{self.port}"


# ----------------------------------------------------------------------------- scripted origin


class OriginConn:
    """One connection accepted by an Origin: the exact bytes received, how it ended."""

    def __init__(self, origin, sock, peer):
        self.origin = origin
        self.sock = sock
        self.peer_port = peer[1]
        self.received = bytearray()
        self.end = None  # 'FIN' | 'RST' | 'closed' (the origin closed first) | 'teardown'
        self.r = Reader(sock, record=self.received, on_data=self._on_data)
        self.requests = []  # raw bytes of each request read by recv_request()
        self.state = {}  # for handlers

    def _on_data(self, d):
        with self.origin.cond:
            if not d and self.end is None and not self.origin.closing:
                self.end = self.r.eof
            self.origin.cond.notify_all()

    # handler API
    def recv_request(self, sink=None):
        """The next request as a Message (raw = exact bytes); None when the peer ended."""
        m = read_message(self.r, request=True, sink=sink)
        if m is not None:
            self.requests.append(m)
            with self.origin.cond:
                self.origin.cond.notify_all()
        return m

    def recv_head(self):
        h = self.r.read_until(b"\r\n\r\n")
        if not h:
            return None
        start, headers = parse_head(h)
        return Message(h, start, headers, b"")

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        with self.origin.cond:
            if self.end is None:
                self.end = "closed"
            self.origin.cond.notify_all()
        self.sock.close()

    def reset(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def wait_end(self, timeout=WAIT):
        self.origin._wait(lambda: self.end is not None, timeout, f"the end of origin connection from :{self.peer_port}")
        return self.end

    def wait_received(self, n, timeout=WAIT):
        self.origin._wait(lambda: len(self.received) >= n or self.end is not None, timeout,
                          f"{n} bytes on origin connection from :{self.peer_port}")


def reply_with(*replies):
    """A handler: for the i-th request on a connection sends replies[i] (the last one
    repeats). A reply is bytes or a function (conn, request) -> bytes."""

    def handler(conn):
        i = 0
        while True:
            req = conn.recv_request()
            if req is None:
                return
            rep = replies[min(i, len(replies) - 1)]
            if callable(rep):
                rep = rep(conn, req)
            if rep is not None:
                conn.send(rep)
            i += 1

    return handler


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Origin:
    """A scripted upstream on 127.0.0.1:0. Each connection runs .handler(conn) in a thread
    (default: answer every request with OK); afterwards the connection is read until it
    ends, so .received and .end always tell what the proxy sent and how it closed."""

    def __init__(self, handler=None, backlog=128, ip="127.0.0.1"):
        self.handler = handler or reply_with(OK)
        self.lsock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((ip, 0))
        self.lsock.listen(backlog)
        self.lsock.settimeout(None)
        self.port = self.lsock.getsockname()[1]
        self.host = f"[{ip}]:{self.port}" if ":" in ip else f"{ip}:{self.port}"
        self.url = f"http://{self.host}"
        self.conns = []
        self.errors = []
        self.cond = threading.Condition()
        self.closing = False
        self._threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self):
        while True:
            try:
                s, peer = self.lsock.accept()
            except OSError:
                return
            s.settimeout(None)
            c = OriginConn(self, s, peer)
            with self.cond:
                if self.closing:
                    s.close()
                    return
                self.conns.append(c)
                self.cond.notify_all()
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, c):
        try:
            self.handler(c)
            if c.end is None:
                c.r.read_to_eof()
            if c.end in ("FIN", "RST"):
                c.sock.close()  # the peer ended: close our side too, as servers do
        except (EOFError, OSError) as e:
            if c.end is None and not self.closing and not isinstance(e, EOFError):
                self.errors.append(f"origin connection :{c.peer_port}: {e!r}")
        except Exception as e:  # a handler bug: the test must see it
            self.errors.append(f"origin handler failed on :{c.peer_port}: {e!r}")
        finally:
            with self.cond:
                if c.end is None:
                    c.end = c.r.eof or ("teardown" if self.closing else "closed")
                self.cond.notify_all()

    def _wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self.cond.wait(left)

    def wait_conns(self, n, timeout=WAIT):
        self._wait(lambda: len(self.conns) >= n, timeout, f"{n} origin connection(s)")
        return self.conns[:n]

    def wait_requests(self, n, timeout=WAIT):
        """Waits until n requests were read in all (over every connection)."""
        self._wait(lambda: sum(len(c.requests) for c in self.conns) >= n, timeout, f"{n} request(s) at the origin")

    @property
    def received(self):
        """Every byte received, over every connection, in connection order."""
        with self.cond:
            return b"".join(bytes(c.received) for c in self.conns)

    def close(self):
        with self.cond:
            self.closing = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone doesn't)
        except OSError:
            pass
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.sock.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(WAIT)


def echo_handler(conn):
    """A raw echo peer: returns every byte; on the client's FIN sends b'bye' and closes."""
    while True:
        d = conn.r.read_some()
        if not d:
            break
        conn.send(d)
    if conn.r.eof == "FIN":
        conn.send(b"bye")
    conn.close()


# ----------------------------------------------------------------------------- nginx


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {d}/www;
        location = /small {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
        location = /204 {{ return 204; }}
        location /files/ {{ etag on; }}
        location /dav/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 0;
        }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        server_name localhost;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{ default_type text/plain; return 200 "hello over tls\\n"; }}
    }}
}}
"""

BIG_SIZE = 200 * 1024 * 1024


class Nginx:
    """Real nginx on loopback, with /small, /204, /files/ (small.txt, big.bin of 200 MiB,
    with an ETag for 304s), /dav/ (PUT then GET: an echo through a file) and a TLS server
    with a self-signed certificate."""

    def __init__(self, d):
        nginx = need("/usr/sbin/nginx") if os.path.exists("/usr/sbin/nginx") else need("nginx")
        openssl = need("openssl")
        self.dir = Path(d)
        (self.dir / "www" / "files").mkdir(parents=True)
        (self.dir / "www" / "dav").mkdir(parents=True)
        (self.dir / "www" / "files" / "small.txt").write_bytes(b"small file\n")
        # 200 MiB of a repeated random MiB: cheap to write, its digest checks every byte.
        block = os.urandom(1 << 20)
        h = hashlib.sha256()
        with open(self.dir / "www" / "files" / "big.bin", "wb") as f:
            for _ in range(BIG_SIZE >> 20):
                f.write(block)
                h.update(block)
        self.big_sha256 = h.hexdigest()
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(self.dir / "key.pem"), "-out", str(self.dir / "cert.pem"),
             "-days", "2", "-subj", "/CN=localhost"],
            check=True, capture_output=True, timeout=WAIT,
        )
        for _ in range(5):  # free ports can be taken in between: retry
            self.port = free_port()
            self.tls_port = free_port()
            conf = self.dir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(d=self.dir, port=self.port, tls_port=self.tls_port))
            self.proc = subprocess.Popen(
                [nginx, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            if self._ready():
                break
        else:
            raise PeerError(f"nginx did not start: {self.log()}")
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.tls_url = f"https://127.0.0.1:{self.tls_port}"

    def _ready(self):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                for p in (self.port, self.tls_port):
                    socket.create_connection(("127.0.0.1", p), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.02)
        self.stop()
        return False

    def log(self):
        try:
            return (self.dir / "error.log").read_text()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        (self.dir / "www" / "files" / "big.bin").unlink(missing_ok=True)  # 200 MiB of tmp


# ----------------------------------------------------------------------------- tshark


def pcapng_ports(path):
    """(src port, dst port) of each TCP packet in a pcapng file that may still be growing
    (a cut last block is ignored). Ethernet (lo) or Linux cooked link types."""
    try:
        data = open(path, "rb").read()
    except FileNotFoundError:
        return []
    out, off, endian, links = [], 0, "<", []
    while off + 12 <= len(data):
        btype = struct.unpack_from(endian + "I", data, off)[0]
        if btype == 0x0A0D0D0A:
            endian = "<" if data[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack_from(endian + "I", data, off + 4)[0]
        if blen < 12 or off + blen > len(data):
            break
        if btype == 1:
            links.append(struct.unpack_from(endian + "H", data, off + 8)[0])
        elif btype == 6:
            iface, _, _, caplen = struct.unpack_from(endian + "IIII", data, off + 8)
            pkt = data[off + 28 : off + 28 + caplen]
            link = links[iface] if iface < len(links) else 1
            l2, et_off = (14, 12) if link == 1 else (16, 14)
            et = struct.unpack_from(">H", pkt, et_off)[0] if len(pkt) >= l2 else 0
            ip = pkt[l2:]
            tcp = None
            if et == 0x0800 and len(ip) >= 20 and ip[9] == 6:
                tcp = ip[(ip[0] & 15) * 4 :]
            elif et == 0x86DD and len(ip) >= 40 and ip[6] == 6:
                tcp = ip[40:]
            if tcp is not None and len(tcp) >= 4:
                out.append(struct.unpack_from(">HH", tcp, 0))
        off += blen
    return out


class Tshark:
    """Captures on lo with a capture filter; .packets() reads the file back with tshark.

    dumpcap hands packets over in blocks (and drops the last block when stopped), so both
    "is it capturing yet" and "has it seen everything" are answered with a sentinel: a
    connect to a closed loopback port included in the filter (a SYN and a RST), awaited in
    the file."""

    def __init__(self, path, cfilter):
        self.tshark = need("tshark")
        self.path = str(path)
        self.sentinel = free_port()
        self.proc = subprocess.Popen(
            [self.tshark, "-i", "lo", "-f", f"({cfilter}) or tcp port {self.sentinel}", "-w", self.path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._err = []
        self._cond = threading.Condition()
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()
        deadline = time.monotonic() + 2 * WAIT
        with self._cond:
            while not any(l and "Capturing on" in l for l in self._err):
                left = deadline - time.monotonic()
                if left <= 0 or (self._err and self._err[-1] is None):
                    self.stop()
                    raise PeerError(f"tshark is not capturing on lo: {''.join(l for l in self._err if l)}")
                self._cond.wait(left)
        # "Capturing on" is printed before dumpcap has the interface open: wait for a
        # sentinel to show up in the file.
        self.sync()

    def _drain(self):
        for line in self.proc.stderr:
            with self._cond:
                self._err.append(line.decode(errors="replace"))
                self._cond.notify_all()
        with self._cond:
            self._err.append(None)
            self._cond.notify_all()

    def _probe(self):
        """Connects to the closed sentinel port; returns the probe's own port."""
        s = socket.socket()
        s.settimeout(1)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.connect(("127.0.0.1", self.sentinel))
        except OSError:
            pass
        finally:
            s.close()
        return port

    def sync(self):
        """Returns once every packet sent before the call is in the file: a probe sent now
        is seen there (packets are handed over in order)."""
        deadline = time.monotonic() + 2 * WAIT
        probes, next_probe = set(), 0
        while True:
            now = time.monotonic()
            if now >= next_probe:  # until the capture runs, probes are lost: repeat them
                probes.add(self._probe())
                next_probe = now + 0.5
            if any(sp in probes and dp == self.sentinel for sp, dp in pcapng_ports(self.path)):
                return
            if now > deadline or self.proc.poll() is not None:
                raise PeerError(f"tshark captured no sentinel packet: {''.join(l for l in self._err if l)}")
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        self._t.join(WAIT)

    def packets(self):
        """[{src, dst, fin, rst, syn, len}] in capture order, sentinel excluded. Syncs,
        stops the capture, and reads the file back with tshark -T fields."""
        if self.proc.poll() is None:
            self.sync()
        self.stop()
        out = subprocess.run(
            [self.tshark, "-r", self.path, "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport",
             "-e", "tcp.flags.fin", "-e", "tcp.flags.reset", "-e", "tcp.flags.syn", "-e", "tcp.len"],
            capture_output=True, text=True, timeout=WAIT,
        )
        pkts = []
        for line in out.stdout.splitlines():
            f = line.split("\t")
            if len(f) < 6 or not f[0]:
                continue
            src, dst = int(f[0]), int(f[1])
            if self.sentinel in (src, dst):
                continue
            flag = lambda v: v in ("1", "True")
            pkts.append(dict(src=src, dst=dst, fin=flag(f[2]), rst=flag(f[3]), syn=flag(f[4]), len=int(f[5] or 0)))
        return pkts


def teardown_flags(pkts, src, dst):
    """The FIN/RST flags of packets from src port to dst port, in order: e.g. ['FIN']."""
    out = []
    for p in pkts:
        if p["src"] == src and p["dst"] == dst:
            if p["rst"]:
                out.append("RST")
            elif p["fin"]:
                out.append("FIN")
    return out


class BlackHole:
    """A loopback port where connect() hangs: a listener with backlog 0 whose accept queue
    already holds one connection, so the kernel drops further SYNs (until the connect
    timeout of whoever tries)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.filler = socket.create_connection(("127.0.0.1", self.port))

    def close(self):
        self.filler.close()
        self.lsock.close()
