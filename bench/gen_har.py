#!/usr/bin/python3
"""bench/gen_har.py - writes a synthetic HAR of about SIZE bytes for the import benchmark:
Chrome-shaped entries (~2 KB each: a dozen request and response headers, cookies, timings,
`_connectionId`, a text body on one entry in four), ~20 entries per connection.

    bench/gen_har.py OUT.har --size 100M

Deterministic (fixed seed); streams the entries, so it needs little memory itself.
"""
import argparse
import json
import random


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
    return int(float(s[:-1] if s[-1:].upper() in "KMG" else s) * mult)


def entry(rng, i, t0_ms):
    conn = i // 20 + 1
    host = f"www{conn % 7}.example.com"
    path = f"/api/v1/items/{i}?page={i % 13}&lang=en"
    body = "".join(rng.choice("abcdefghij ") for _ in range(rng.randrange(200, 1200))) \
        if i % 4 == 0 else ""
    start = t0_ms + i * 7
    return {
        "startedDateTime": f"2026-11-26T12:{(start // 60000) % 60:02d}:"
                           f"{(start // 1000) % 60:02d}.{start % 1000:03d}Z",
        "time": 12.5,
        "_connectionId": str(conn),
        "connection": str(40000 + conn),
        "serverIPAddress": "192.0.2.10",
        "request": {
            "method": "GET", "url": f"https://{host}{path}", "httpVersion": "HTTP/1.1",
            "headers": [{"name": n, "value": v} for n, v in [
                ("Host", host), ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"),
                ("Accept", "application/json, text/plain, */*"),
                ("Accept-Language", "en-US,en;q=0.9"), ("Accept-Encoding", "gzip, deflate, br"),
                ("Cookie", f"sid={rng.getrandbits(64):016x}; theme=dark"),
                ("Referer", f"https://{host}/app"), ("Connection", "keep-alive")]],
            "cookies": [{"name": "sid", "value": "x"}, {"name": "theme", "value": "dark"}],
            "queryString": [{"name": "page", "value": str(i % 13)}, {"name": "lang", "value": "en"}],
            "headersSize": 420, "bodySize": 0,
        },
        "response": {
            "status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
            "headers": [{"name": n, "value": v} for n, v in [
                ("Date", "Thu, 26 Nov 2026 12:00:00 GMT"), ("Server", "nginx/1.24.0"),
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(body))), ("Cache-Control", "no-cache"),
                ("ETag", f"\"{rng.getrandbits(48):012x}\""), ("Connection", "keep-alive")]],
            "cookies": [], "redirectURL": "", "headersSize": 230, "bodySize": len(body),
            "content": {"size": len(body), "mimeType": "application/json", "text": body},
        },
        "cache": {},
        "timings": {"blocked": 0.5, "dns": -1, "connect": 3.0 if i % 20 == 0 else -1,
                    "ssl": -1, "send": 0.1, "wait": 8.4, "receive": 0.5},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=size_arg, default=size_arg("10M"))
    a = ap.parse_args()
    rng = random.Random(10)
    with open(a.out, "w") as f:
        f.write('{"log": {"version": "1.2", "creator": {"name": "WebInspector", '
                '"version": "537.36"}, "pages": [], "entries": [\n')
        n = 0
        while f.tell() < a.size:
            f.write((",\n" if n else "") + json.dumps(entry(rng, n, 0)))
            n += 1
        f.write("\n]}}\n")


if __name__ == "__main__":
    main()
