"""captures.py - capture files written directly with sqlite3 from src/capture/schema.sql, so
that the views can be tested on exact, known rows (and benchmarked on a million of them)
without going through the recorder.

    with Capture(path) as cap:
        c = cap.connection(client_port=50001)
        u = cap.upstream(c, local_port=40001)
        e = cap.exchange(c, upstream=u, req_head=b"GET / HTTP/1.1\\r\\n...\\r\\n\\r\\n", ...)
        cap.body(e, 1, b"hello")
        cap.change(e, "remove Proxy-Connection")

Times are microseconds since the epoch; T0 is 2026-11-26 12:00:00 UTC.
"""
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = (ROOT / "src" / "capture" / "schema.sql").read_text()
T0 = 1795694400 * 1_000_000  # 2026-11-26 12:00:00 UTC


def head(*lines):
    """A head from its lines: CRLF after each, and the empty line that ends it."""
    return b"".join(l + b"\r\n" for l in lines) + b"\r\n"


class Capture:
    """A capture file being written by a test. Ids are given in order from 1 unless named."""

    def __init__(self, path, events_dropped=0, started_us=T0, stopped_us=None, body_limit=1 << 20,
                 wal=True):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        if wal:
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.db.execute(
            "INSERT INTO capture VALUES (1, '0.1.0', 'shunt proxy --capture test.db', 'proxy',"
            " NULL, ?, ?, ?, ?)",
            (started_us, stopped_us, body_limit, events_dropped),
        )
        self.n_conn = self.n_up = self.n_ex = 0
        self.idx = {}

    def connection(self, id=None, client_port=50000, opened_us=T0, closed_us=None,
                   closer=None, close_how=None, tls=0, tunnel=0, auth_scheme=None,
                   client_addr="127.0.0.1", bytes_in=0, bytes_out=0):
        self.n_conn = id if id is not None else self.n_conn + 1
        self.db.execute(
            "INSERT INTO connections (id, client_addr, client_port, listen_addr, listen_port,"
            " opened_us, closed_us, closer, close_how, bytes_in, bytes_out, tls, tunnel,"
            " auth_scheme) VALUES (?, ?, ?, '127.0.0.1', 8888, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.n_conn, client_addr, client_port, opened_us, closed_us, closer, close_how,
             bytes_in, bytes_out, tls, tunnel, auth_scheme),
        )
        return self.n_conn

    def upstream(self, conn, local_port=40000, host="origin.test", port=80, opened_us=T0):
        self.n_up += 1
        self.db.execute(
            "INSERT INTO upstreams (id, conn_id, host, port, addr, remote_port, local_port,"
            " opened_us) VALUES (?, ?, ?, ?, '127.0.0.1', ?, ?, ?)",
            (self.n_up, conn, host, port, port, local_port, opened_us),
        )
        return self.n_up

    def exchange(self, conn, upstream=None, reused=0, method="GET", host="origin.test", path="/",
                 port=None, status=200, req_head=None, req_head_sent=None, resp_head=None,
                 resp_head_sent=None, resp_interim=None, started_us=T0, duration_us=1500,
                 req_bytes=None, resp_bytes=None, req_body_size=0, resp_body_size=0,
                 timings=(-1, -1, -1, 10, 1000, 20), error=None, flags=0, id=None, url=None):
        self.n_ex = id if id is not None else self.n_ex + 1
        self.idx[conn] = self.idx.get(conn, 0) + 1
        if req_head is None:
            req_head = head(f"{method} {path} HTTP/1.1".encode(), b"Host: " + host.encode())
        if resp_head is None and status is not None:
            resp_head = head(f"HTTP/1.1 {status} OK".encode(), b"Content-Length: 0")
        if url is None:
            url = f"http://{host}{':' + str(port) if port else ''}{path}"
        self.db.execute(
            "INSERT INTO exchanges (id, conn_id, idx, upstream_id, upstream_reused, started_us,"
            " method, url, host, path, http_version, status, req_head, req_head_sent, resp_head,"
            " resp_head_sent, resp_interim, req_body_size, resp_body_size, req_bytes, resp_bytes,"
            " t_blocked, t_dns, t_connect, t_send, t_wait, t_receive, duration_us, error, flags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'HTTP/1.1', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.n_ex, conn, self.idx[conn], upstream, reused if upstream else None, started_us,
             method, url, host, path, status, req_head, req_head_sent, resp_head, resp_head_sent,
             resp_interim, req_body_size, resp_body_size,
             req_bytes if req_bytes is not None else len(req_head) + req_body_size,
             resp_bytes if resp_bytes is not None else len(resp_head or b"") + resp_body_size,
             *timings, duration_us, error, flags),
        )
        return self.n_ex

    def body(self, exchange, direction, data, truncated=0):
        self.db.execute("INSERT INTO bodies (exchange_id, direction, data, truncated) VALUES (?, ?, ?, ?)",
                        (exchange, direction, data, truncated))

    def change(self, exchange, what, by="proxy", in_request=1):
        self.db.execute(
            "INSERT INTO changes (exchange_id, in_request, what, by) VALUES (?, ?, ?, ?)",
            (exchange, in_request, what, by),
        )

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ----------------------------------------------------------------------------- the sample

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(range(0, 40))


def sample(path, events_dropped=0):
    """The capture most view tests read: 3 connections, 6 exchanges with known values.

    conn 1 (port 50001, upstream local port 40001, closed by the client with FIN, lasted
    2.5 s): exchanges 1 (GET /index.html 200, Proxy-Connection removed on the way, a text
    response body) and 2 (GET /logo.png 200, reused upstream, binary body).
    conn 2 (port 50002, upstreams 40002 and 40003, RST by the server, NTLM): exchanges 3
    (POST /api/items 201 with a JSON request body truncated by the capture, response head
    changed by a rule) and 4 (GET to other.test, 502 with an error).
    conn 3 (port 50003, still open, tunnel with TLS): exchange 5 (CONNECT, tunnel) and 6
    (GET /slow 200 after a 100 Continue, 2.5 s).
    """
    with Capture(path, events_dropped=events_dropped) as cap:
        c1 = cap.connection(client_port=50001, opened_us=T0 + 1234, closed_us=T0 + 2_501_234,
                            closer="client", close_how="FIN")
        u1 = cap.upstream(c1, local_port=40001)
        e1 = cap.exchange(
            c1, upstream=u1, reused=0, path="/index.html", started_us=T0 + 2000,
            duration_us=12_345, timings=(10, -1, 520, 30, 11_000, 785),
            req_head=head(b"GET http://origin.test/index.html HTTP/1.1", b"Host: origin.test",
                          b"Proxy-Connection: keep-alive", b"Accept: */*"),
            req_head_sent=head(b"GET /index.html HTTP/1.1", b"Host: origin.test",
                               b"Accept: */*"),
            resp_head=head(b"HTTP/1.1 200 OK", b"Content-Type: text/html",
                           b"Content-Length: 30"),
            resp_body_size=30,
        )
        cap.body(e1, 1, b"<html>\r\nhello \xc3\xa9t\xc3\xa9\r\n</html>\r\n")
        cap.change(e1, "remove Proxy-Connection")
        e2 = cap.exchange(c1, upstream=u1, reused=1, path="/logo.png", started_us=T0 + 20_000,
                          resp_head=head(b"HTTP/1.1 200 OK", b"Content-Type: image/png",
                                         b"Content-Length: 56"),
                          resp_body_size=56, duration_us=800)
        cap.body(e2, 1, PNG)

        c2 = cap.connection(client_port=50002, opened_us=T0 + 3_000_000,
                            closed_us=T0 + 3_000_000 + 75_500, closer="server",
                            close_how="RST", auth_scheme="NTLM")
        u2 = cap.upstream(c2, local_port=40002)
        u3 = cap.upstream(c2, local_port=40003, host="other.test")
        body = b'{"name": "' + b"x" * 3000 + b'"}'
        e3 = cap.exchange(
            c2, upstream=u2, method="POST", path="/api/items", status=201,
            started_us=T0 + 3_000_100, duration_us=2_000,
            req_head=head(b"POST /api/items HTTP/1.1", b"Host: origin.test",
                          b"Content-Type: application/json", b"Content-Length: 3012"),
            resp_head=head(b"HTTP/1.1 201 Created", b"Server: test", b"Content-Length: 0"),
            resp_head_sent=head(b"HTTP/1.1 201 Created", b"Content-Length: 0",
                                b"X-Debug: shunt"),
            req_body_size=3012, flags=4,
        )
        cap.body(e3, 0, body[:2500], truncated=1)
        cap.change(e3, "remove Server", by="strip-server", in_request=0)
        cap.change(e3, "add X-Debug: shunt", by="strip-server", in_request=0)
        cap.exchange(c2, upstream=u3, host="other.test", path="/down", status=502,
                     started_us=T0 + 3_050_000, duration_us=10_000_000, error="upstream refused",
                     flags=2, timings=(-1, 200, -1, 0, 0, 0),
                     resp_head=head(b"HTTP/1.1 502 Bad Gateway", b"Content-Length: 0"))

        c3 = cap.connection(client_port=50003, opened_us=T0 + 4_000_000, tls=1, tunnel=1)
        u4 = cap.upstream(c3, local_port=40004, host="secure.test", port=443)
        cap.exchange(c3, upstream=u4, method="CONNECT", host="secure.test", port=443,
                     path="secure.test:443", url="secure.test:443", status=200,
                     started_us=T0 + 4_000_100, duration_us=60_000_000, flags=8,
                     resp_head=head(b"HTTP/1.1 200 Connection established"))
        cap.exchange(c3, upstream=u4, reused=1, path="/slow", started_us=T0 + 4_100_000,
                     duration_us=2_500_000,
                     resp_interim=head(b"HTTP/1.1 100 Continue"),
                     resp_head=head(b"HTTP/1.1 200 OK", b"Content-Length: 0"))
    return path
