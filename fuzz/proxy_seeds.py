#!/usr/bin/env python3
"""fuzz/proxy_seeds.py - writes the seed corpus of fuzz_proxy (fuzz/corpus/proxy/): scripts of
client and origin steps in the driver's format (see fuzz/fuzz_proxy.c). Run it again after
changing the cases; the files are committed."""
import os

CLIENT, ORIGIN, CFIN, OFIN, RST = 0, 3, 5, 6, 7


def steps(*parts):
    out = bytearray()
    for op, data in parts:
        data = data.encode() if isinstance(data, str) else data
        if op in (CFIN, OFIN):
            out += bytes([op, 0])
            continue
        if op == RST:
            out += bytes([op, data])
            continue
        while True:  # long data as several steps of at most 255 bytes
            out += bytes([op, min(len(data), 255)]) + data[:255]
            data = data[255:]
            if not data:
                break
    return bytes(out)


OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
GET = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
CASES = {
    "get": steps((CLIENT, GET), (ORIGIN, OK)),
    "keepalive-two": steps((CLIENT, GET), (ORIGIN, OK), (CLIENT, GET), (ORIGIN, OK)),
    "pipelined": steps((CLIENT, GET * 3), (ORIGIN, OK * 3)),
    "post-cl": steps((CLIENT, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
                     (ORIGIN, OK)),
    "post-chunked": steps((CLIENT, "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), (ORIGIN, OK)),
    "resp-chunked": steps((CLIENT, GET), (ORIGIN, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                  "3\r\nabc\r\n0\r\nX-Trailer: y\r\n\r\n")),
    "resp-close-framed": steps((CLIENT, GET), (ORIGIN, "HTTP/1.1 200 OK\r\n\r\nuntil close"), (OFIN, "")),
    "continue": steps((CLIENT, "PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
                      (ORIGIN, "HTTP/1.1 100 Continue\r\n\r\n"), (CLIENT, "abc"), (ORIGIN, OK)),
    "ntlm": steps((CLIENT, "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: NTLM TlRMTVNTUAABAAAA\r\n\r\n"),
                  (ORIGIN, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM TlRMTVNTUAACAAAA\r\n"
                           "Content-Length: 0\r\n\r\n"), (CLIENT, GET), (ORIGIN, OK)),
    "upgrade": steps((CLIENT, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
                     (ORIGIN, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
                     (CLIENT, "\x81\x02hi"), (ORIGIN, "\x81\x02yo")),
    "head": steps((CLIENT, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"),
                  (ORIGIN, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")),
    "http10": steps((CLIENT, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                    (ORIGIN, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")),
    "client-fin-mid-body": steps((CLIENT, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"), (CFIN, "")),
    "origin-reset": steps((CLIENT, GET), (ORIGIN, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"), (RST, 0)),
    "client-reset": steps((CLIENT, GET), (RST, 1)),
    "rule-respond": steps((CLIENT, "GET / HTTP/1.1\r\nHost: x\r\nX-Respond: yes\r\n\r\n")),
    "dup-cl": steps((CLIENT, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"),
                    (ORIGIN, "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")),
    "overlong-body": steps((CLIENT, GET), (ORIGIN, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nabcdef")),
    "no-reason": steps((CLIENT, "\r\n" + GET), (ORIGIN, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")),
}

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "proxy")
os.makedirs(here, exist_ok=True)
for name, data in CASES.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
print(f"{len(CASES)} seeds in {here}")
