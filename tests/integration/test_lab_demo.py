"""test_lab_demo.py - `shunt lab demo`, run whole: the story's before and after figures,
the capture it leaves, its rule the same as examples/rules/add-server-header.lua, and every
process it started gone when it returns."""
import re
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import peers

ROOT = Path(__file__).resolve().parents[2]


def run_demo(tmp_path, *args):
    t = time.monotonic()
    p = subprocess.run([peers.SHUNT_BIN, "lab", "demo", "--dir", str(tmp_path / "demo"), *args],
                       capture_output=True, timeout=60)
    return p, time.monotonic() - t


def figures(out, step):
    """(requests, ok, connections, handshakes, closed by the client) of step 1 or 4."""
    part = out.split(f"\n{step}) ")[1]
    m = re.search(r"requests (\d+) \((\d+) ok\)\s+connections (\d+)\s+handshakes (\d+)\s+"
                  r"closed by the client (\d+)", part)
    assert m, part
    return tuple(int(x) for x in m.groups())


@pytest.mark.deadline(90)
def test_demo_plays_the_story_with_its_figures(tmp_path):
    p, took = run_demo(tmp_path)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert took < 10, took
    assert figures(out, 1) == (50, 50, 50, 50, 50)
    assert figures(out, 4) == (50, 50, 1, 1, 0)
    # diagnose's finding comes between steps 2 and 3, and it is the story's
    between = out.split("\n2) ")[1].split("\n3) ")[0]
    assert "1. wininet-auth-close  (certain)  49 connections" in between, between
    assert "Add Server Header: on" in out
    assert "The story played out" in out
    # the capture it points at holds what it said: 51 connections, 50 closed by the client
    db = tmp_path / "demo" / "demo.db"
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT closer, close_how, auth_scheme FROM connections ORDER BY id").fetchall()
    assert len(rows) == 51
    assert rows[:50] == [("client", "FIN", "Negotiate")] * 50
    assert (db.stat().st_mode & 0o777) == 0o600
    # every process it started is gone: nothing listens on the ports it printed
    ports = [int(x) for x in re.findall(r"127\.0\.0\.1:(\d+)", out.split("\n1) ")[0])]
    assert len(ports) == 3, ports
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_demo_rule_is_the_example(tmp_path):
    p, _ = run_demo(tmp_path, "--requests", "3")
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    assert figures(p.stdout.decode(), 1) == (3, 3, 3, 3, 3)
    written = (tmp_path / "demo" / "add-server-header.lua").read_text()
    assert written == (ROOT / "examples" / "rules" / "add-server-header.lua").read_text()


def test_demo_bad_usage(tmp_path):
    for args, msg in [(["--requests", "0"], "expected 1 to 10000"), (["--bogus"], "unknown option")]:
        p, _ = run_demo(tmp_path, *args)
        assert p.returncode == 2 and msg in p.stderr.decode()
