"""test_capture_tls.py - what the capture keeps of TLS (schema 2: the tls table, t_ssl, the
close bits) as the views, the HAR export and import, and diagnose show it: from HAR files
that carry TLS (tests/data/har/chrome-https.har, a Chrome export over HTTPS with
timings.ssl; tests/data/har/shunt-tls.har, shunt's export of an intercepting proxy's
capture: a decrypted exchange, a client that rejected shunt's certificate, an upstream
whose certificate expired, a handshake that timed out); and a capture of schema 1, which
still reads everywhere. The proxy's side (the events) is tests/integration/test_https.py's,
but for the URL the recorder makes of a request inside an intercepted tunnel.
"""
import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import peers
import tlspeers

pki = tlspeers.pki
tls_nginx = tlspeers.tls_nginx
shunt_ca = tlspeers.shunt_ca

ROOT = Path(__file__).resolve().parents[2]
HAR = ROOT / "tests" / "data" / "har"
SCHEMA_V1 = ROOT / "tests" / "data" / "capture" / "schema-v1.sql"


def run(*args, check=0):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    p = subprocess.run([peers.SHUNT_BIN] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode >= 0, f"shunt killed by signal {-p.returncode}: {p.stderr}"
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    if check is not None:
        assert p.returncode == check, f"shunt {args}: exit {p.returncode}: {p.stderr}"
    return p


def imported(tmp_path, name):
    out = tmp_path / (name + ".db")
    run("import", HAR / name, "--capture", out)
    return out


def rows(path, sql, *args):
    with sqlite3.connect(str(path)) as c:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute(sql, args)]


def entries(har_path):
    return json.loads(Path(har_path).read_text(encoding="utf-8-sig"))["log"]["entries"]


def connections(path):
    v = json.loads(run("connections", "--json", path).stdout)
    return v["connections"]


# ----------------------------------------------------------------------------- timings.ssl


def test_chrome_https_har_fills_t_ssl_and_gives_it_back(tmp_path):
    db = imported(tmp_path, "chrome-https.har")
    ex = rows(db, "SELECT url, t_connect, t_ssl, upstream_reused FROM exchanges ORDER BY id")
    # connect includes ssl (HAR 1.2): kept as it is, the TLS part beside it
    assert [(e["url"], e["t_connect"], e["t_ssl"]) for e in ex] == [
        ("https://shop.test/", 48211, 31702),
        ("https://shop.test/app.css", -1, -1),
        ("https://api.shop.test/v1/cart", 38040, 24633)]
    show = run("show", db, "1").stdout
    assert "exchange 1: GET https://shop.test/ -> 200 OK" in show
    assert "connect 48.21 (TLS 31.70), send 0.29" in show
    assert json.loads(run("show", db, "3", "--json").stdout)["exchange"]["t_ssl"] == 24633
    out = tmp_path / "out.har"
    run("export", db, "--har", out)
    src = entries(HAR / "chrome-https.har")
    back = entries(out)
    for a, b in zip(src, back):
        assert b["timings"]["ssl"] == a["timings"]["ssl"]
        assert b["timings"]["connect"] == a["timings"]["connect"]
        assert b["time"] == a["time"]


def test_sessions_name_https_urls(tmp_path):
    db = imported(tmp_path, "shunt-tls.har")
    s = json.loads(run("sessions", db, "--json").stdout)["exchanges"]
    assert [x["url"] for x in s] == ["shop.test:443", "https://shop.test/cart",
                                     "pinned.test:443", "https://pinned.test/",
                                     "old.test:443", "https://old.test/"]
    assert s[1]["port"] == 443 and s[1]["host"] == "shop.test"
    table = run("sessions", db).stdout.splitlines()
    # inside TLS the host says so; the CONNECT before it names its target
    assert table[2].split()[4:7] == ["GET", "https://shop.test", "/cart"]
    assert table[1].split()[4:7] == ["CONNECT", "shop.test:443", "shop.test:443"]
    assert table[4].split()[4:7] == ["-", "https://pinned.test", "/"]


# ----------------------------------------------------------------------------- the facts


def test_show_prints_both_sides_tls_facts(tmp_path):
    db = imported(tmp_path, "shunt-tls.har")
    out = run("show", db, "2").stdout
    assert "exchange 2: GET https://shop.test/cart -> 200 OK" in out
    assert "connect 9.80 (TLS 6.51)" in out
    assert ("TLS with the client: TLSv1.3, TLS_AES_256_GCM_SHA384, ALPN http/1.1, SNI shop.test;"
            " handshake 2.48 ms\n"
            "  certificate (shunt's): CN=shop.test, issued by CN=shunt CA (build-7)\n"
            "    valid 2026-11-26 11:00:00 UTC to 2026-12-26 11:00:00 UTC; DNS:shop.test\n"
            "    sha256 3f:9a:0c:11") in out
    assert "  ended: close_notify both ways\n" in out
    assert ("TLS with the upstream: TLSv1.3, TLS_AES_128_GCM_SHA256, ALPN http/1.1, SNI sent "
            "shop.test; handshake 6.51 ms\n"
            "  certificate of the server: CN=shop.test,O=Shop Test Ltd, issued by CN=Test "
            "Issuing CA 1,O=Test PKI\n"
            "    valid 2026-09-01 00:00:00 UTC to 2027-09-01 00:00:00 UTC; DNS:shop.test, "
            "DNS:www.shop.test\n") in out
    assert "  verification: chain and name verified\n" in out
    assert "  ended: truncated (TCP closed without close_notify)\n" in out
    x = json.loads(run("show", db, "2", "--json").stdout)["exchange"]
    assert x["tls"]["client"]["version"] == "TLSv1.3"
    assert x["tls"]["client"]["upstream_id"] is None
    assert x["tls"]["upstream"]["cert_san"] == "DNS:shop.test, DNS:www.shop.test"
    assert x["tls"]["upstream"]["verify_result"] == 0
    # the CONNECT of the same connection: the client's side, no upstream
    y = json.loads(run("show", db, "1", "--json").stdout)["exchange"]
    assert y["tls"]["client"]["sni"] == "shop.test" and y["tls"]["upstream"] is None


def test_show_gives_the_reason_of_a_failed_handshake(tmp_path):
    db = imported(tmp_path, "shunt-tls.har")
    out = run("show", db, "4").stdout
    assert "exchange 4: - https://pinned.test/ -> no response  [E]" in out
    assert "TLS with the client: SNI pinned.test; handshake 3.12 ms" in out
    assert "  failed: the client rejected shunt's certificate (alert 48: unknown ca)\n" in out
    assert "  ended: truncated (TCP closed without close_notify)\n" in out
    # shunt's 502 after the upstream's certificate failed: that upstream's facts
    out = run("show", db, "6").stdout
    assert "TLS with the upstream: SNI sent old.test; handshake 5.40 ms" in out
    assert "valid 2025-01-01 00:00:00 UTC to 2026-01-01 00:00:00 UTC; DNS:old.test" in out
    assert "  verification: failed (X509_V_ERR 10)\n" in out
    assert "  failed: certificate verify failed: certificate has expired\n" in out


def test_connections_mark_tls_and_carry_the_facts(tmp_path):
    db = imported(tmp_path, "shunt-tls.har")
    table = run("connections", db).stdout.splitlines()
    assert table[1].endswith("tunnel+tls") and table[4].endswith("tls")
    cs = connections(db)
    hs = cs[0]["tls_handshakes"]
    assert [(h["side"], h["upstream_id"], h["version"], h["close_bits"]) for h in hs] == [
        (0, None, "TLSv1.3", 11), (1, 1, "TLSv1.3", 12)]
    assert hs[1]["cert_sha256"].startswith("a1:5e:22") and hs[1]["handshake_us"] == 6510
    # a connection without an exchange keeps its failed handshake
    assert cs[3]["exchanges"] == 0
    assert cs[3]["tls_handshakes"][0]["error"] == "handshake timed out after 10 s"


def test_peer_strings_are_escaped_when_shown(tmp_path):
    db = imported(tmp_path, "shunt-tls.har")
    with sqlite3.connect(str(db)) as c:
        c.execute("UPDATE tls SET cert_subject = 'CN=evil' || char(27) || '[2J', "
                  "sni = 'a' || char(10) || 'b' WHERE side = 1 AND conn_id = 1")
    out = run("show", db, "2").stdout
    assert "\x1b" not in out
    assert "CN=evil\\x1b[2J" in out and "SNI sent a\\x0ab" in out


# ----------------------------------------------------------------------------- round trip


def test_har_round_trip_keeps_every_tls_fact(tmp_path):
    db = imported(tmp_path, "shunt-tls.har")
    har = tmp_path / "again.har"
    run("export", db, "--har", har)
    es = entries(har)
    assert es[1]["timings"]["ssl"] == 6.51 and es[1]["timings"]["connect"] == 9.8
    assert es[0]["timings"]["ssl"] == -1
    assert es[1]["_shunt"]["tls"]["upstream"]["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert es[3]["request"]["method"] == "-"  # the failed handshake: no request was read
    assert "tls" not in es[0]["_shunt"] or es[0]["_shunt"]["tls"]["upstream"] is None
    log = json.loads(har.read_text())["log"]["_shunt"]
    assert [t["sni"] for t in log["tls"]] == ["slow.test"]
    back = tmp_path / "back.db"
    run("import", har, "--capture", back)
    assert connections(back) == connections(db)
    assert rows(back, "SELECT * FROM tls ORDER BY id") == rows(db, "SELECT * FROM tls ORDER BY id")
    assert rows(back, "SELECT id, method, t_connect, t_ssl FROM exchanges ORDER BY id") == rows(
        db, "SELECT id, method, t_connect, t_ssl FROM exchanges ORDER BY id")
    assert run("diff", db, har).stdout.strip().endswith("no difference.")


# ----------------------------------------------------------------------------- the URL


def test_an_intercepted_request_is_recorded_where_it_was_routed(
        shunt, shunt_ca, pki, tls_nginx, tmp_path):
    """Inside an intercepted tunnel shunt sends the request to the CONNECT's authority,
    whatever the client's Host says: the URL and host are that authority's (a Host naming
    another host, without port, does not make it look as if bank.example was asked); the
    Host stays in the head."""
    cap = tmp_path / "c.db"
    px = shunt("--intercept", "--upstream-cacert", pki.ca, "--capture", cap, env=shunt_ca.env)
    shunt_ca.wait()
    base = tls_nginx.url("good")
    r = peers.curl("--noproxy", "", "-x", px.proxy_url, "--cacert", str(shunt_ca.cert),
                   "-H", "Host: other.example", f"{base}/path")
    assert r.returncode == 0, r.stderr
    assert px.stop() == []
    (get,) = [e for e in json.loads(run("sessions", "--json", cap).stdout)["exchanges"]
              if e["method"] == "GET"]
    assert (get["url"], get["host"], get["status"]) == (f"{base}/path", "localhost", 200), get
    assert rows(cap, "SELECT host FROM exchanges WHERE id = ?", get["id"]) == [{"host": "localhost"}]
    assert "Host: other.example" in run("show", cap, get["id"]).stdout


# ----------------------------------------------------------------------------- diagnose


def test_diagnose_names_the_rejected_certificate_and_the_expired_one(tmp_path):
    db = imported(tmp_path, "shunt-tls.har")
    for src in (db, HAR / "shunt-tls.har"):
        d = json.loads(run("diagnose", src, "--json", check=1).stdout)  # 1: findings
        f = {x["id"]: x for x in d["findings"]}
        r = f["tls-client-rejects-cert"]
        assert r["confidence"] == "certain" and r["count"] == 1
        assert "pinned.test" in r["what"] and "does not trust shunt's CA" in r["what"]
        assert "shunt ca" in r["fix"] and "--intercept FILTER" in r["fix"]
        assert r["examples"]["exchanges"] == [4]
        u = f["tls-upstream-cert-invalid"]
        assert u["confidence"] == "certain"
        assert "certificate has expired (old.test)" in u["what"]
        assert u["examples"]["exchanges"] == [6]
    text = run("diagnose", db, check=1).stdout
    assert "tls-client-rejects-cert  (certain)" in text


# A character a terminal may obey: C0 controls but newline, DEL, C1 controls.
def controls(text):
    return sorted({hex(ord(ch)) for ch in text
                   if (ord(ch) < 0x20 and ch != "\n") or 0x7f <= ord(ch) <= 0x9f})


def test_diagnose_and_diff_escape_what_a_hostile_har_names(tmp_path):
    # hostile-tls.har: shunt-tls.har with an SNI, an upstream error, a User-Agent and a URL
    # holding OSC, CSI and C1 sequences (an untrusted HAR must not drive the terminal)
    db = imported(tmp_path, "hostile-tls.har")
    for src in (db, HAR / "hostile-tls.har"):
        text = run("diagnose", src, check=1).stdout
        assert controls(text) == [], text
        assert "\\x1b]0;pwned\\x07\\x1b[31mRED" in text.replace("\n   ", " ")
        assert "\\x1b]0;owned\\x07\\xc2\\x9b2Jcertificate" in text
        # the JSON keeps the text whole (JSON-escaped)
        d = json.loads(run("diagnose", src, "--json", check=1).stdout)
        what = {x["id"]: x["what"] for x in d["findings"]}
        assert "\x1b]0;pwned\x07\x1b[31mRED" in what["tls-client-rejects-cert"]
        assert "\x1b]0;owned\x07\x9b2J" in what["tls-upstream-cert-invalid"]
    text = run("diff", db, HAR / "shunt-tls.har", check=None).stdout
    assert controls(text) == [], text
    assert "curl/7.88.1\\x1b[31m\\xc2\\x9b1m" in text
    assert "/cart\\x1b[2J\\xc2\\x9b0m" in text


def test_a_hostile_har_that_is_no_json_is_named_without_its_controls(tmp_path):
    # jansson quotes the bad token: here a C1 CSI (U+009B) before a byte that is not UTF-8
    har = tmp_path / "bad.har"
    har.write_bytes(b'{"log": "a\xc2\x9b2Jb\xff" }')
    for args in (("diagnose", har), ("import", har, "--capture", tmp_path / "bad.db")):
        p = subprocess.run([peers.SHUNT_BIN] + [str(a) for a in args], capture_output=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 2 and b"not JSON" in p.stderr, p.stderr
        assert controls(p.stderr.decode("latin-1").replace("\n", "")) == [], p.stderr


def test_diagnose_json_takes_a_name_cut_inside_a_character(tmp_path):
    # the check cuts a long SNI at 80 bytes, here inside the 2 bytes of its last letter
    har = tmp_path / "cut.har"
    sni = json.dumps("\u001b]0;pwned\u0007\u001b[31mRED")[1:-1]
    har.write_text((HAR / "hostile-tls.har").read_text().replace(sni, "a" * 79 + "\\u00e9"))
    d = json.loads(run("diagnose", har, "--json", check=1).stdout)
    what = {x["id"]: x["what"] for x in d["findings"]}["tls-client-rejects-cert"]
    assert "a" * 79 + "\ufffd (1 with" in what


# ----------------------------------------------------------------------------- schema 1


def capture_v1(path):
    """A capture as shunt wrote it before schema 2: no tls table, no t_ssl."""
    with sqlite3.connect(str(path)) as c:
        c.executescript(SCHEMA_V1.read_text())
        c.execute("INSERT INTO capture VALUES (1, '0.1.0', 'shunt proxy', 'proxy', NULL,"
                  " 1795694400000000, 1795694401000000, 1048576, 0)")
        c.execute("INSERT INTO connections (id, client_addr, client_port, opened_us, closed_us,"
                  " closer, close_how, bytes_in, bytes_out, n_exchanges) VALUES (1, '127.0.0.1',"
                  " 50001, 1795694400000000, 1795694400500000, 'client', 'FIN', 40, 38, 1)")
        c.execute("INSERT INTO upstreams (id, conn_id, host, port, addr, remote_port, local_port,"
                  " opened_us) VALUES (1, 1, 'origin.test', 80, '127.0.0.1', 80, 40001,"
                  " 1795694400001000)")
        c.execute("INSERT INTO exchanges (id, conn_id, idx, upstream_id, upstream_reused,"
                  " started_us, method, url, host, path, http_version, status, req_head,"
                  " resp_head, req_bytes, resp_bytes, t_connect, duration_us) VALUES (1, 1, 1,"
                  " 1, 0, 1795694400002000, 'GET', 'http://origin.test/', 'origin.test', '/',"
                  " 'HTTP/1.1', 200, ?, ?, 40, 38, 700, 1500)",
                  (b"GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    os.chmod(path, 0o600)


def test_a_version_1_capture_still_reads_everywhere(tmp_path):
    path = tmp_path / "v1.db"
    capture_v1(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert "GET     origin.test  /" in run("sessions", path).stdout
    show = run("show", path, "1").stdout
    assert "connect 0.70, send" in show and "TLS with" not in show
    x = json.loads(run("show", path, "1", "--json").stdout)["exchange"]
    assert x["t_ssl"] == -1 and x["tls"] == {"client": None, "upstream": None}
    cs = connections(path)
    assert cs[0]["tls"] is False and "tls_handshakes" not in cs[0]
    har = tmp_path / "v1.har"
    run("export", path, "--har", har)
    e = entries(har)[0]
    assert e["timings"]["ssl"] == -1 and e["timings"]["connect"] == 0.7
    assert "tls" not in e["_shunt"]
    assert "tls-" not in run("diagnose", path, check=None).stdout
    run("diff", path, har)
    back = tmp_path / "back.db"
    run("import", har, "--capture", back)
    assert connections(back) == cs
    # reading never wrote to it
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    with sqlite3.connect(str(path)) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1
