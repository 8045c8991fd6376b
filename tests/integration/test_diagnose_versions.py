"""`shunt diagnose` on HTTP/2 and HTTP/3 (issue 11): browser HARs whose entries say `h2`,
`http/2.0`, `HTTP/2`, `h3`. HTTP/1.1's rules (message framing, hop-by-hop fields,
persistence, connection-bound authentication) are not applied to them, and connection checks
allow for multiplexing: no "certain" finding rests on an HTTP/1.1 rule applied to another
version (docs/diagnose.md, "Versions"). Each case has its HTTP/1.1 twin, which is judged.

tests/data/diagnose/chrome-h2.har is a page load in the shape Chrome's DevTools export
(creator WebInspector, pseudo-header fields, `connection` the socket id, `connect` -1 on a
reused connection): one HTTP/2 connection per origin, streams overlapping, 404s without
Content-Length, fonts over HTTP/3, later pages each on a new connection."""
import datetime
import json

import pytest

import peers
from test_diagnose import findings, har_entry, write_har

U = "https://app.example/"
H2_HAR = peers.ROOT / "tests/data/diagnose/chrome-h2.har"


def test_a_browsers_http2_page_load_is_healthy():
    ids, doc = findings(H2_HAR)
    assert ids == [], doc["findings"]
    # what the HAR holds: HTTP/2 and HTTP/3, 404s without a length among them
    log = json.loads(H2_HAR.read_text())["log"]["entries"]
    assert {e["request"]["httpVersion"] for e in log} == {"http/2.0", "h3"}
    assert any(e["response"]["status"] == 404 and
               not any(h["name"] == "content-length" for h in e["response"]["headers"])
               for e in log)


def test_the_same_page_over_http11_is_judged(tmp_path):
    # the same entries as HTTP/1.1: a 404 without Content-Length is delimited by the close
    doc = json.loads(H2_HAR.read_text())
    for e in doc["log"]["entries"]:
        e["request"]["httpVersion"] = e["response"]["httpVersion"] = "http/1.1"
    har = tmp_path / "h1.har"
    har.write_text(json.dumps(doc))
    ids, _ = findings(har)
    assert "unframed-or-overlong-body" in ids


@pytest.mark.parametrize("version", ["spdy/3.1", "quic/1+spdy/3", "http/2+quic/43", "SPDY/3"])
def test_spdy_and_quic_pages_are_multiplexed_not_http11(tmp_path, version):
    # Review of issue 11, finding 2: the names older Chrome wrote for SPDY and Google's QUIC
    # (har_import.c knows them) frame every body by the stream: the page's 404s without a
    # length are no close-delimited HTTP/1.1 bodies, and no "certain" finding says so
    doc = json.loads(H2_HAR.read_text())
    for e in doc["log"]["entries"]:
        e["request"]["httpVersion"] = e["response"]["httpVersion"] = version
    har = tmp_path / "old-chrome.har"
    har.write_text(json.dumps(doc))
    ids, d = findings(har)
    assert ids == [], d["findings"]


@pytest.mark.parametrize("version, judged", [("h2", False), ("HTTP/2.0", False),
                                             ("h3", False), ("spdy/3.1", False),
                                             ("http/2+quic/43", False), ("HTTP/1.1", True)])
def test_heads_over_http2_are_not_held_to_http11_rules(tmp_path, version, judged):
    # a 404 without Content-Length, and fields that are hop-by-hop in HTTP/1.1 (a HAR lists
    # what the browser shows; on the wire HTTP/2 has no such fields)
    req = [("Host", "app.example"), ("Connection", "keep-alive, Cookie"),
           ("Proxy-Connection", "keep-alive")]
    har = write_har(tmp_path / "x.har", [
        har_entry(0, U + "a", req, 404, [("Server", "nginx"), ("Keep-Alive", "timeout=5")],
                  http=version),
        har_entry(1, U + "b", req, 200, [("Server", "nginx"), ("Content-Length", "2")],
                  http=version, conn="2"),
    ])
    ids, doc = findings(har)
    if judged:
        assert {"unframed-or-overlong-body", "hop-by-hop-misuse"} <= set(ids), ids
        return
    assert ids == [], doc["findings"]


def page_per_connection(tmp_path, version, n=6):
    """A browser that opens a new connection to the origin for each page, 600 ms apart, one
    request each."""
    t0 = datetime.datetime(2026, 3, 2, 9, 15, tzinfo=datetime.timezone.utc)
    entries = []
    for k in range(n):
        e = har_entry(0, U + f"page/{k}", [("Host", "app.example")], 200,
                      [("Server", "nginx"), ("Content-Length", "2")], http=version,
                      conn=str(100 + k))
        t = t0 + datetime.timedelta(milliseconds=600 * k)
        e["startedDateTime"] = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        e["timings"]["connect"] = 20
        entries.append(e)
    return write_har(tmp_path / f"pages-{version.replace('/', '')}.har", entries)


@pytest.mark.parametrize("version, judged", [("h2", False), ("http/2.0", False),
                                             ("h3", False), ("HTTP/1.1", True)])
def test_a_connection_per_page_is_low_reuse_only_over_http11(tmp_path, version, judged):
    # Over HTTP/1.1 each page's connection replaced the one before: six requests on six
    # connections. An HTTP/2 or HTTP/3 connection carries every request to its origin at
    # once; a browser's one per origin and page is how it is meant to be used.
    ids, doc = findings(page_per_connection(tmp_path, version))
    assert ids == (["low-reuse"] if judged else []), doc["findings"]
