"""`shunt diagnose` and `shunt diff` on a real browser's traffic: headless Chromium loads a
page of thirteen resources from nginx through `shunt proxy --capture`, over the several
connections a browser opens. Healthy traffic must give no finding (no check may mistake a
browser's parallel connections, its Proxy-Connection, or its closes at exit for a defect),
and the capture compared with itself no difference.

Chromium also sends background traffic of its own (its updater, sign-in) through the proxy:
a `--respond` rule refuses every host but 127.0.0.1, CONNECTs included, so that the proxy
never resolves or reaches anything else."""
import json
import os
import sqlite3
import subprocess
import uuid

import pytest

import peers

pytestmark = pytest.mark.deadline(120)

IMAGES = 12


def load_page(chromium, px, url, tmp_path):
    """Chromium loads <url> through <px>; returns the DOM it printed."""
    p = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / f'chromium-{uuid.uuid4().hex}'}",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", f"--proxy-server=http://127.0.0.1:{px.port}",
         "--proxy-bypass-list=<-loopback>", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.fixture
def browse(shunt, nginx, tmp_path):
    """browse(name) -> capture path: a page of IMAGES images and a script on nginx, loaded by
    Chromium through a new shunt recording to tmp_path/NAME.db (stopped when it returns)."""
    chromium = peers.need("chromium")
    page = f"page-{uuid.uuid4().hex}"
    d = nginx.dir / "www" / page
    d.mkdir()
    for i in range(IMAGES):
        (d / f"img{i}.bin").write_bytes(os.urandom(20000))
    (d / "a.js").write_text("document.title = 'loaded';\n")
    (d / "index.html").write_text(
        "<html><body>" + "".join(f'<img src="img{i}.bin">' for i in range(IMAGES)) +
        '<script src="a.js"></script></body></html>')
    refused = tmp_path / "refused.txt"
    refused.write_text("not on this test's network\n")

    def run(name):
        cap = tmp_path / f"{name}.db"
        px = shunt("--capture", cap, "--respond", f"|!~d 127.0.0.1|403|{refused}")
        dom = load_page(chromium, px, f"{nginx.url}/{page}/", tmp_path)
        assert "<title>loaded</title>" in dom, dom[:500]
        assert px.stop() == []
        return cap

    return run


def test_a_browser_loading_a_page_is_healthy(browse):
    cap = browse("page")
    with sqlite3.connect(f"file:{cap}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT host, status, error FROM exchanges").fetchall()
        conns = db.execute("SELECT count(DISTINCT conn_id) FROM exchanges "
                           "WHERE host = '127.0.0.1'").fetchone()[0]
    ours = [r for r in rows if r[0] == "127.0.0.1"]
    assert sum(1 for r in ours if r[1] == 200) >= IMAGES + 2, rows  # page, images, script
    assert conns > 1  # a browser's parallel connections: what the checks must not misread
    # the proxy resolved nothing: every other host was refused by the rule
    assert all(r[1] == 403 and r[2] is None for r in rows if r[0] != "127.0.0.1"), rows
    for args in ([], ["~d 127.0.0.1"]):
        p = subprocess.run([peers.SHUNT_BIN, "diagnose", str(cap), *args, "--json"],
                           capture_output=True, text=True, timeout=peers.WAIT)
        doc = json.loads(p.stdout)
        assert (p.returncode, [f["id"] for f in doc["findings"]]) == (0, []), p.stdout


def test_a_browser_capture_against_itself_has_no_difference(browse):
    cap = browse("page")
    p = subprocess.run([peers.SHUNT_BIN, "diff", str(cap), str(cap)], capture_output=True,
                       text=True, timeout=peers.WAIT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "connection behaviour is the same" in p.stdout, p.stdout
