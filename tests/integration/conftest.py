"""conftest.py - fixtures for the integration tests: the shunt binary, a scripted origin,
nginx, tshark; a time bound on every test; a check that no process is left behind.

Run with Debian's interpreter: /usr/bin/python3 -m pytest tests/integration
SHUNT_BIN=build-asan/shunt runs the suite against the sanitizer build.
"""
import os
import signal
import socket

import pytest

import labpeers
import peers

TEST_DEADLINE = 60  # seconds a test may take, fixtures included


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): a different time bound for this test")
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
