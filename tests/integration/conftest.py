"""conftest.py - fixtures for the integration tests: the shunt binary, a scripted origin,
nginx, tshark; a time bound on every test; a check that no process is left behind.

Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/integration
SHUNT_BIN=build-asan/shunt runs the suite against the sanitizer build.
"""
import difflib
import json
import os
import signal
import socket
import subprocess

import pytest

import labpeers
import peers

TEST_DEADLINE = 60  # seconds a test may take, fixtures included


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): a different time bound for this test")
    config.addinivalue_line("markers", "no_har_round_trip(reason): the captures this test's "
                            "proxies write are not checked against their HAR export (say why)")
    socket.setdefaulttimeout(peers.WAIT)


class DeadlineExceeded(Exception):
    pass


def _alarm(signum, frame):
    raise DeadlineExceeded(f"test took longer than its deadline ({TEST_DEADLINE}s or its mark)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    mark = item.get_closest_marker("deadline")
    seconds = int(mark.args[0]) if mark else TEST_DEADLINE
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _children():
    me = str(os.getpid())
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2 :].split()
        if fields[1] == me and fields[0] != "Z":
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                out.append((int(pid), f.read().replace(b"\0", b" ").decode(errors="replace")))
    return out


def pytest_sessionfinish(session, exitstatus):
    left = _children()
    for pid, cmd in left:
        os.kill(pid, signal.SIGKILL)  # only our own children, by pid
    if left:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"integration: processes left behind (killed): {left}", red=True
        )
        session.exitstatus = 1


# ----------------------------------------------------------------------------- shunt


def _factory(make):
    """A fixture body: yields start(*args, **kw) -> make(args, **kw); every process started
    is stopped at teardown (SIGTERM) and must have exited 0 with no sanitizer report."""
    started = []

    def start(*args, wait_listening=True, **kw):
        p = make([str(a) for a in args], wait_listening=False, **kw)
        started.append(p)  # stopped at teardown even if it never listens
        if wait_listening:
            p.await_listening()
        return p

    yield start
    problems = []
    for p in started:
        problems += p.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def shunt():
    """A factory: shunt(*args, listen='127.0.0.1:0') starts `build/shunt proxy` and returns
    a peers.Shunt once it printed its listening line. At teardown each one gets SIGTERM
    and must exit 0; a crash (exit by a signal) or any sanitizer report fails the test."""
    yield from _factory(peers.Shunt)


@pytest.fixture
def lab_origin():
    """A factory: lab_origin(*args) starts `shunt lab origin --listen 127.0.0.1:0 ARGS` and
    returns a labpeers.LabOrigin (.port, .log...); stopped at teardown like shunt's."""
    yield from _factory(labpeers.LabOrigin)


@pytest.fixture
def origins():
    """A factory of scripted origins: origins(handler=None, ip="127.0.0.1") -> peers.Origin."""
    made = []

    def make(handler=None, backlog=128, ip="127.0.0.1"):
        o = peers.Origin(handler, backlog=backlog, ip=ip)
        made.append(o)
        return o

    yield make
    errors = []
    for o in made:
        o.close()
        errors += [e for e in o.errors if "handler failed" in e]
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def origin(origins):
    """One scripted origin; set .handler before traffic (default: 200 'ok' to every request)."""
    return origins()


@pytest.fixture(scope="session")
def nginx(tmp_path_factory):
    n = peers.Nginx(tmp_path_factory.mktemp("nginx"))
    yield n
    n.stop()


@pytest.fixture
def tshark(tmp_path):
    """A factory: tshark(port) starts a capture of `tcp port PORT` on lo and returns once
    tshark is really capturing; .packets() stops it and reads the file back."""
    caps = []

    def start(*ports):
        cfilter = " or ".join(f"tcp port {p}" for p in ports)
        t = peers.Tshark(tmp_path / f"cap{len(caps)}.pcapng", cfilter)
        caps.append(t)
        return t

    yield start
    for t in caps:
        t.stop()


# ----------------------------------------------------------------------------- HAR round trip
#
# Every capture a test's proxy writes must say the same thing after `shunt export --har`:
# `shunt diff CAPTURE EXPORTED.har` finds no difference, and the HAR imported again shows the
# same connections (`shunt connections --json`, every row and column: docs/har.md, "Round
# trip"). The
# check runs after the test, once its proxies stopped, for each capture file a `shunt proxy`
# of the test created (a file that existed before is not the proxy's). A test whose captures
# are broken on purpose opts out with @pytest.mark.no_har_round_trip("why").

_round_trip_captures = None  # while a test runs: [(path, peers.Shunt)]


def _capture_path(args):
    """The capture file named by `shunt proxy` arguments <args> (absolute), or None."""
    for i, a in enumerate(args):
        if a.startswith("--capture="):
            return os.path.abspath(a[len("--capture="):])
        if a == "--capture":
            # as cmd_proxy.c reads it: the name is optional, shunt.db when an option follows
            nxt = args[i + 1] if i + 1 < len(args) else None
            return os.path.abspath(nxt if nxt is not None and not nxt.startswith("-")
                                   else "shunt.db")
    return None


_shunt_init = peers.Shunt.__init__


def _recording_init(self, args, *a, **kw):
    path = _capture_path([str(x) for x in args])
    if _round_trip_captures is not None and path is not None and not os.path.exists(path):
        _round_trip_captures.append((path, self))
    _shunt_init(self, args, *a, **kw)


peers.Shunt.__init__ = _recording_init


# what `connections --json` says of the capture file itself rather than of what it recorded
_NOT_COMPARED = ("file", "command_line", "shunt_version")


def _round_trip(path):
    """Exports the capture <path> to HAR, diffs the two, imports the HAR again and compares
    the connections both show; returns a problem or None."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    har, back = path + ".round-trip.har", path + ".round-trip.db"
    for f in (back, back + "-wal", back + "-shm"):
        if os.path.exists(f):
            os.unlink(f)
    steps = [["export", path, "--har", har], ["diff", path, har],
             ["import", har, "--capture", back], ["connections", "--json", path],
             ["connections", "--json", back]]
    views = []
    for args in steps:
        p = subprocess.run([peers.SHUNT_BIN] + args, capture_output=True, text=True,
                           timeout=peers.WAIT, env=env, stdin=subprocess.DEVNULL)
        if p.returncode != 0 or peers.SANITIZER_RE.search(p.stderr):
            return (f"HAR round trip of {path}: `shunt {' '.join(args)}` exited "
                    f"{p.returncode}\n{p.stdout[-6000:]}{p.stderr[-3000:]}")
        if args[0] == "connections":
            v = json.loads(p.stdout)
            for k in _NOT_COMPARED:
                v["capture"].pop(k, None)
            views.append(v)
    if views[0] != views[1]:
        a, b = (json.dumps(v, indent=1, sort_keys=True).splitlines() for v in views)
        delta = "\n".join(difflib.unified_diff(a, b, "capture", "HAR imported", lineterm=""))
        return f"HAR round trip of {path}: `shunt connections --json` differs\n{delta[-6000:]}"
    return None


@pytest.fixture(autouse=True)
def har_round_trip(request):
    """After the test: each capture its proxies wrote diffs clean against its HAR export."""
    global _round_trip_captures
    mark = request.node.get_closest_marker("no_har_round_trip")
    if mark is not None:
        assert mark.args and mark.args[0], "no_har_round_trip needs a reason"
    # tests/run checks the round trip in the release pass only (SHUNT_HAR_ROUND_TRIP=0 for
    # the sanitizer passes: five more processes per capture there cost minutes, and the
    # export, import and diff code is under the sanitizers in test_har.py and the fuzzers)
    enabled = os.environ.get("SHUNT_HAR_ROUND_TRIP", "1") != "0"
    _round_trip_captures = [] if mark is None and enabled else None
    yield
    captures, _round_trip_captures = _round_trip_captures or [], None
    problems = []
    for path, px in captures:
        if px.proc.poll() is None:
            continue  # still running (the test left it to the session's end): not complete
        try:
            with open(path, "rb") as f:
                if f.read(16) != b"SQLite format 3\0":
                    continue  # the proxy refused to start, or the test replaced the file
        except OSError:
            continue  # the test removed it
        problem = _round_trip(path)
        if problem:
            problems.append(problem)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
