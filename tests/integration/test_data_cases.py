"""Framing cases as data: each file under tests/data/framing/ is one case (curl's
tests/data/test1 is the model), run here in each mode it names. The format is described in
tests/data/framing/README; in short:

    # what the case shows, and the RFC section
    modes: forward reverse
    --- client
    POST $URL/ HTTP/1.1
    Host: $HOST
    Content-Length: 5
    Content-Length: 5

    hello\\
    --- origin
    ...
    --- expect-upstream
    ...
    --- expect-client
    ...
    --- expect-change
    Content-Length 5, 5 sent as one field (RFC 9110 8.6)

Each line of a wire section ends in CRLF, unless it ends in a backslash (the next line, if
any, follows directly). Escapes: \\r \\n \\t \\\\ \\xHH. $URL is http://HOST in forward mode and
empty in reverse mode; $HOST is the origin's host:port.
"""
import re
import signal
import sqlite3
from pathlib import Path

import pytest

import peers

DATA = Path(__file__).resolve().parents[1] / "data" / "framing"
WIRE = {"client", "origin", "expect-upstream", "expect-client"}
SECTIONS = WIRE | {"expect-status", "expect-body-has", "expect-change"}
OPTIONS = {"modes", "client-end", "origin-end", "upstream-end", "args"}


def unescape(line):
    """The bytes of one line of a wire section, and whether a CRLF follows it."""
    crlf = True
    if line.endswith("\\") and not line.endswith("\\\\"):
        line, crlf = line[:-1], False
    out = bytearray()
    i = 0
    while i < len(line):
        c = line[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = line[i + 1 : i + 2]
        if e == "x":
            out.append(int(line[i + 2 : i + 4], 16))
            i += 4
            continue
        out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[e]
        i += 2
    return bytes(out) + (b"\r\n" if crlf else b"")


class Case:
    def __init__(self, path):
        self.name = path.name
        self.opts = {}
        self.sections = {}
        cur = None
        text = path.read_text()
        for raw in (text[:-1] if text.endswith("\n") else text).split("\n"):
            m = re.match(r"^--- ([a-z-]+)\s*$", raw)
            if m:
                cur = m.group(1)
                assert cur in SECTIONS, f"{path.name}: unknown section {cur}"
                assert cur not in self.sections, f"{path.name}: section {cur} twice"
                self.sections[cur] = []
            elif cur is not None:
                self.sections[cur].append(raw)
            elif raw.strip() and not raw.startswith("#"):
                k, _, v = raw.partition(":")
                assert k in OPTIONS, f"{path.name}: unknown option {k}"
                self.opts[k] = v.strip()
        for k, lines in self.sections.items():
            while lines and lines[-1] == "" and k not in WIRE:
                lines.pop()
        assert "client" in self.sections, f"{path.name}: no client section"
        self.modes = self.opts.get("modes", "forward reverse").split()

    def wire(self, name, mode, origin):
        lines = self.sections.get(name)
        if lines is None:
            return None
        if name == "expect-upstream" and [l.strip() for l in lines] == ["none"]:
            return b""
        data = b"".join(unescape(l) for l in lines)
        url = f"http://{origin.host}" if mode == "forward" else ""
        return data.replace(b"$URL", url.encode()).replace(b"$HOST", origin.host.encode())

    def lines(self, name):
        return self.sections.get(name, [])


CASES = sorted(DATA.glob("*.case"))
PARAMS = [pytest.param(p, m, id=f"{p.stem}-{m}") for p in CASES for m in Case(p).modes]


def changes_by_shunt(path):
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return [(r[0], r[1]) for r in c.execute(
            "SELECT in_request, what FROM changes WHERE by = 'shunt' ORDER BY id")]
    finally:
        c.close()


@pytest.mark.parametrize("path, mode", PARAMS)
def test_data_case(shunt, origin, tmp_path, path, mode):
    case = Case(path)
    reply = case.wire("origin", mode, origin) or peers.OK
    close_after = case.opts.get("origin-end") == "close"

    def handler(conn):
        try:
            while conn.recv_request() is not None:
                conn.send(reply)
                if close_after:
                    break
        except EOFError:
            pass  # the request ended unfinished: closed without an answer, as servers do
        conn.close()

    origin.handler = handler
    db = tmp_path / "c.db"
    args = ["--capture", str(db)] + case.opts.get("args", "").split()
    if mode == "reverse":
        args += ["--reverse", origin.url]
    px = shunt(*args)

    sent = case.wire("client", mode, origin)
    method = sent.split(b" ", 1)[0].lstrip(b"\r\n").decode()
    with px.client() as c:
        c.send(sent)
        if case.opts.get("client-end") == "fin":
            c.shutdown_write()
        want = case.wire("expect-client", mode, origin)
        status = case.lines("expect-status")
        if want is not None or status:
            resp = c.response(method=method)
            assert resp is not None, "the connection ended without a response"
            if want is not None:
                assert resp.raw == want
            if status:
                assert resp.status == int(status[0]), resp
                for s in case.lines("expect-body-has"):
                    assert s.encode() in resp.body, resp
                # a refusal ends the connection, with nothing after the answer
                assert c.wait_eof()[0] == b""

    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0
    for conn in origin.conns:
        conn.wait_end()
    want_up = case.wire("expect-upstream", mode, origin)
    if want_up is not None:
        assert origin.received == want_up
    if "upstream-end" in case.opts:
        assert [conn.end for conn in origin.conns] == [case.opts["upstream-end"]]

    got = changes_by_shunt(db)
    want_changes = case.lines("expect-change")
    for w in want_changes:
        assert any(w in what for _, what in got), f"no change {w!r} in {got}"
    assert len(got) == len(want_changes), f"changes by shunt: {got}, want {want_changes}"
