#!/usr/bin/python3
"""bench/gen_capture.py - writes a synthetic capture of N exchanges (default 1,000,000) for
the view benchmarks: ~20 exchanges per connection, realistic heads (~300 B request, ~200 B
response), one upstream per connection (a second one on every tenth), a text body on one
exchange in ten, a changed request head on one in five, a few errors and truncated bodies.

    bench/gen_capture.py OUT.db [--exchanges N]

Deterministic (fixed seed), one transaction, executemany: a million exchanges in well under a
minute. Uses the schema in src/capture/schema.sql, so the file is what the recorder writes.
"""
import argparse
import os
import random
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = 1795694400 * 1_000_000  # 2026-11-26 12:00:00 UTC

HOSTS = ["www.example.com", "api.example.com", "cdn.example.net", "login.corp.test",
         "intranet.corp.test", "static.example.org", "tracker.ads.test", "mail.corp.test"]
# One exchange in ~2000 goes to this host: the "rare host" of the benchmark.
RARE = "rare.example.com"
PATHS = ["/", "/index.html", "/api/v1/items?page={n}", "/static/app.{n}.js", "/img/{n}.png",
         "/login", "/api/v1/users/{n}", "/search?q=term{n}&lang=en"]
STATUSES = [200] * 80 + [304] * 8 + [301, 302] * 2 + [404] * 4 + [500, 502, 401, 403]
UA = (b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      b"Chrome/120.0 Safari/537.36\r\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--exchanges", type=int, default=1_000_000)
    ap.add_argument("--per-conn", type=int, default=20)
    a = ap.parse_args()
    if os.path.exists(a.out):
        sys.exit(f"{a.out}: exists")
    rnd = random.Random(42)
    t = time.monotonic()
    db = sqlite3.connect(a.out, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript((ROOT / "src" / "capture" / "schema.sql").read_text())
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    db.execute("INSERT INTO capture VALUES (1, '0.1.0', 'bench/gen_capture.py', 'proxy', NULL,"
               " ?, ?, 1048576, 0)", (T0, T0 + 3600 * 1_000_000))
    conns, ups, exs, bodies, changes = [], [], [], [], []
    n_conn = n_up = 0
    now = T0
    body = (b"<!doctype html><html><head><title>bench</title></head><body>" + b"lorem ipsum " * 80
            + b"</body></html>")

    def flush():
        db.executemany("INSERT INTO connections VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", conns)
        db.executemany("INSERT INTO upstreams VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", ups)
        db.executemany("INSERT INTO exchanges VALUES (" + ",".join("?" * 30) + ")", exs)
        db.executemany("INSERT INTO bodies VALUES (?,?,?,?)", bodies)
        db.executemany("INSERT INTO changes (exchange_id, in_request, what, by) VALUES (?,?,?,?)",
                       changes)
        for l in (conns, ups, exs, bodies, changes):
            l.clear()

    ex_id = 0
    while ex_id < a.exchanges:
        n_conn += 1
        port = 20000 + n_conn % 40000
        opened = now
        n = min(a.per_conn, a.exchanges - ex_id)
        n_up += 1
        up_ids = [n_up]
        ups.append((n_up, n_conn, HOSTS[n_conn % len(HOSTS)], 80, "10.0.0.1", 80,
                    30000 + n_up % 30000, opened, None, "client", "FIN", 0, 0))
        if n_conn % 10 == 0:
            n_up += 1
            up_ids.append(n_up)
            ups.append((n_up, n_conn, HOSTS[(n_conn + 1) % len(HOSTS)], 80, "10.0.0.2", 80,
                        30000 + n_up % 30000, opened, None, "server", "FIN", 0, 0))
        for k in range(n):
            ex_id += 1
            host = RARE if ex_id % 2000 == 0 else HOSTS[(n_conn + (k % 2 and n_conn % 10 == 0)) % len(HOSTS)]
            path = rnd.choice(PATHS).format(n=ex_id % 997)
            status = rnd.choice(STATUSES)
            method = "POST" if ex_id % 17 == 0 else "GET"
            req = (f"{method} http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n".encode() + UA +
                   b"Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"
                   b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
                   b"Proxy-Connection: keep-alive\r\n\r\n")
            changed = ex_id % 5 == 0
            sent = req.replace(b"Proxy-Connection: keep-alive\r\n", b"") if changed else None
            resp = (f"HTTP/1.1 {status} OK\r\nServer: nginx/1.22\r\nDate: Thu, 26 Nov 2026 "
                    f"12:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: "
                    f"{len(body)}\r\nConnection: keep-alive\r\n\r\n").encode()
            has_body = ex_id % 10 == 0
            trunc = ex_id % 1000 == 0
            err = "upstream reset" if status == 502 else None
            dur = rnd.randint(200, 200_000)
            exs.append((ex_id, n_conn, k + 1, up_ids[k % 2 if len(up_ids) > 1 else 0],
                        1 if k else 0, now, method, f"http://{host}{path}", host, path,
                        "HTTP/1.1", status, req, sent, resp, None, None, 0,
                        len(body) if has_body else 0, len(req), len(resp) + len(body),
                        -1, -1 if k else 300, -1 if k else 500, 20, dur - 100, 80, dur, err,
                        (1 if changed else 0) | (2 if err else 0) | (4 if trunc else 0)))
            if has_body:
                bodies.append((ex_id, 1, body, 1 if trunc else 0))
            if changed:
                changes.append((ex_id, 1, "remove Proxy-Connection", "proxy"))
            now += rnd.randint(100, 5000)
        conns.append((n_conn, "127.0.0.1", port, "127.0.0.1", 8888, opened, now + 1000,
                      rnd.choice(["client", "client", "server", "proxy"]),
                      rnd.choice(["FIN", "FIN", "FIN", "RST", "timeout"]), n * 400, n * 900, 0, 0,
                      n, "NTLM" if n_conn % 50 == 0 else None))
        if len(exs) >= 20000:
            flush()
    flush()
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    print(f"{a.out}: {a.exchanges} exchanges, {n_conn} connections, "
          f"{os.path.getsize(a.out) / 1e6:.0f} MB, {time.monotonic() - t:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
