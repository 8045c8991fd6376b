"""test_rules.py - quick header rules (--modify-headers, --add-header): what reaches the
origin and the client, byte for byte, with mitmproxy's syntax and filters; the story's rule;
every change recorded in the capture with the rule that made it."""
import signal
import sqlite3

import peers
from peers import OK, get, origin_form, reply_with, response


def test_story_rule_adds_the_server_header_to_responses_only(shunt, origin):
    origin.handler = reply_with(response(headers=[b"X-A: 1"], body=b"hi"))
    px = shunt("--modify-headers", "/~s/Server/Microsoft-IIS/6.0")
    req = get(origin.host, "/")
    with px.client() as c:
        resp = c.exchange(req)
    assert resp.raw == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\nServer: Microsoft-IIS/6.0\r\n\r\nhi"
    assert bytes(origin.conns[0].received) == origin_form(req)  # the request untouched


def test_modify_replaces_in_place_keeping_order_and_other_bytes(shunt, origin):
    origin.handler = reply_with(b"HTTP/1.1 200 OK\r\nserver:   nginx\r\nX-B: 2\r\nServer: again\r\nContent-Length: 2\r\n\r\nok")
    px = shunt("--modify-headers", "/~s/Server/IIS")
    with px.client() as c:
        resp = c.exchange(get(origin.host, "/"))
    # the first Server keeps its place and spelling, the second goes, the rest is untouched
    assert resp.raw == b"HTTP/1.1 200 OK\r\nserver: IIS\r\nX-B: 2\r\nContent-Length: 2\r\n\r\nok"


def test_empty_value_removes_and_no_filter_means_both_directions(shunt, origin):
    origin.handler = reply_with(response(headers=[b"X-Secret: s"], body=b"ok"))
    px = shunt("--modify-headers", "/X-Secret/")
    req = get(origin.host, "/", extra=b"X-Secret: from-client\r\nX-Keep: k\r\n")
    with px.client() as c:
        resp = c.exchange(req)
    assert resp.get("x-secret") is None and resp.body == b"ok"
    got = bytes(origin.conns[0].received)
    assert b"X-Secret" not in got and b"X-Keep: k\r\n" in got


def test_add_header_appends_without_replacing_and_other_separators(shunt, origin):
    px = shunt("--add-header", "|~q|Via|test-a", "--add-header", "|~q|Via|test-b")
    req = get(origin.host, "/", extra=b"Via: 1.0 client\r\n")
    with px.client() as c:
        c.exchange(req)
    got = bytes(origin.conns[0].received)
    assert got.endswith(b"Via: 1.0 client\r\nVia: test-a\r\nVia: test-b\r\n\r\n"), got


def test_filters_select_the_messages(shunt, origin):
    origin.handler = reply_with(
        lambda conn, req: response(b"404 Not Found", body=b"no") if b"/missing" in req.start
        else response(body=b"ok"))
    px = shunt("--modify-headers", "/~s & ~c 404/X-Was/404",
               "--modify-headers", "/~q & ~u missing/X-Asked/missing")
    with px.client() as c:
        ok = c.exchange(get(origin.host, "/there"))
        miss = c.exchange(get(origin.host, "/missing"))
    assert ok.get("x-was") is None and miss.get("x-was") == b"404"
    reqs = bytes(origin.conns[0].received)
    assert reqs.count(b"X-Asked: missing") == 1 and reqs.index(b"X-Asked") > reqs.index(b"/missing")


def test_rules_apply_on_an_open_keep_alive_connection_per_exchange(shunt, origin):
    origin.handler = reply_with(response(body=b"ok"))
    px = shunt("--modify-headers", "/~s/Server/Microsoft-IIS/6.0")
    with px.client() as c:
        for _ in range(3):
            assert c.exchange(get(origin.host, "/")).get("server") == b"Microsoft-IIS/6.0"
    assert len(origin.conns) == 1


def test_changes_are_recorded_with_the_rule_that_made_them(shunt, origin, tmp_path):
    path = tmp_path / "c.db"
    px = shunt("--capture", str(path), "--modify-headers", "/~s/Server/Microsoft-IIS/6.0",
               "--add-header", "/~q/X-Debug/1")
    with px.client() as c:
        c.exchange(get(origin.host, "/"))
    px.signal(signal.SIGTERM)
    assert px.wait_exit() == 0
    with sqlite3.connect(path) as db:
        changes = db.execute("SELECT in_request, what, by FROM changes ORDER BY id").fetchall()
        sent = db.execute("SELECT resp_head_sent FROM exchanges").fetchone()[0]
    assert (0, "set Server: Microsoft-IIS/6.0", "--modify-headers #1") in changes
    assert (1, "add X-Debug: 1", "--add-header #1") in changes
    assert b"\r\nServer: Microsoft-IIS/6.0\r\n" in bytes(sent)


def test_bad_rules_are_refused_with_a_clear_line(shunt):
    cases = [
        (("--modify-headers", "X"), "expected [/FILTER]/NAME/VALUE"),
        (("--modify-headers", "/~q ~zz/X/1"), "column 4"),
        (("--modify-headers", "//1"), "header name is empty"),
        (("--add-header", "/~q/X-A/"), "value is empty"),
        (("--modify-headers", "/~q/Bad Name/1"), "is not a header name"),
        # framing is the proxy's: a changed length would desync the next hop (smuggling)
        (("--modify-headers", "/Content-Length/0"), "Content-Length frames the message"),
        (("--modify-headers", "/content-length/"), "content-length frames the message"),
        (("--add-header", "/~s/Transfer-Encoding/chunked"), "Transfer-Encoding frames the message"),
    ]
    for args, message in cases:
        px = shunt(*args, wait_listening=False)
        assert px.wait_exit() == 2, args
        lines = px.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, px.stderr)


def test_respond_answers_matching_requests_without_the_server(shunt, origin, tmp_path):
    page = tmp_path / "maintenance.html"
    page.write_bytes(b"<h1>down</h1>")
    px = shunt("--respond", f"/~u maintenance/503/{page}")
    with px.client() as c:
        canned = c.exchange(get(origin.host, "/maintenance"))
        real = c.exchange(get(origin.host, "/other"))  # the same connection goes on
    assert canned.raw == (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n"
                          b"Content-Length: 13\r\n\r\n<h1>down</h1>")
    assert real.raw == OK
    assert b"/maintenance" not in origin.received and b"/other" in origin.received


def test_respond_refuses_a_connect_without_opening_anything(shunt, origin, tmp_path):
    """--respond applies to CONNECT (as mitmproxy's block_list does): a status of 300 or more
    refuses the tunnel, no connection is made; a 2xx would read as an open tunnel, so the
    rule does not apply to a CONNECT and the tunnel is made as usual."""
    page = tmp_path / "blocked.txt"
    page.write_bytes(b"blocked\n")
    px = shunt("--respond", f"|~m CONNECT & ~u :{origin.port}$|403|{page}",
               "--respond", f"|~m CONNECT|200|{page}")
    with px.client() as c:
        r = c.exchange(f"CONNECT {origin.host} HTTP/1.1\r\nHost: {origin.host}\r\n\r\n"
                       .encode(), method="CONNECT")
        assert r.status == 403 and r.body == b"blocked\n", r
        # the connection goes on as HTTP after a refused CONNECT
        assert c.exchange(get(origin.host, "/after")).raw == OK
    assert len(origin.conns) == 1 and b"/after" in origin.received  # the GET only
    other = peers.free_port()
    with px.client() as c:  # the 2xx rule does not apply: a real tunnel attempt, refused
        r = c.exchange(f"CONNECT 127.0.0.1:{other} HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\n"
                       "\r\n".encode(), method="CONNECT")
        assert r.status == 502 and b"refused" in r.body.lower(), r


def test_map_rules_leave_a_connect_alone(shunt, origin, tmp_path):
    """--map-local and --map-remote rewrite URLs; a CONNECT has none (host:port only), so a
    rule whose regex matches the host must not answer or move the tunnel."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_bytes(b"local\n")
    px = shunt("--map-local", f"|127.0.0.1|{site}/",
               "--map-remote", f"|127.0.0.1|127.0.0.1:{peers.free_port()}")
    with px.client() as c:
        r = c.exchange(f"CONNECT {origin.host} HTTP/1.1\r\nHost: {origin.host}\r\n\r\n"
                       .encode(), method="CONNECT")
        assert r.status == 200, r  # the tunnel to the origin, not a 404 from the folder
        c.send(get(origin.host, "/through"))
        assert c.response().raw == OK
    assert b"/through" in origin.received


def test_respond_refuses_bad_specs(shunt, tmp_path):
    for spec, message in [(f"/~q/99/{tmp_path}/x", "not a status code"),
                          ("/~q/200/" + str(tmp_path / "missing"), "cannot read it"),
                          ("/200", "expected [/FILTER]/STATUS/FILE")]:
        px = shunt("--respond", spec, wait_listening=False)
        assert px.wait_exit() == 2
        assert message in px.stderr and len(px.stderr.strip().splitlines()) == 1, px.stderr


def test_map_remote_sends_the_request_elsewhere_with_the_mapped_path_and_host(shunt, origins):
    a, b = origins(), origins()
    px = shunt("--map-remote", rf"|~u /api|127\.0\.0\.1:{a.port}/api/(.*)|{b.host}/v2/\1")
    with px.client() as c:
        assert c.exchange(get(a.host, "/api/users?id=1")).raw == OK
        assert c.exchange(get(a.host, "/other")).raw == OK  # not matched: stays with a
    got_b = bytes(b.conns[0].received)
    assert got_b.startswith(b"GET /v2/users?id=1 HTTP/1.1\r\nHost: " + b.host.encode() + b"\r\n"), got_b
    assert bytes(a.conns[0].received).startswith(b"GET /other HTTP/1.1\r\n")


def test_map_remote_in_reverse_mode_leaves_the_reverse_origin(shunt, origins):
    a, b = origins(), origins()
    px = shunt("--reverse", a.url, "--map-remote", rf"|~u /beta|//[^/]+/beta/|//{b.host}/")
    with px.client() as c:
        req = b"GET /beta/page HTTP/1.1\r\nHost: shop.test\r\n\r\n"
        assert c.exchange(req).raw == OK
    got = bytes(b.conns[0].received)
    assert got.startswith(b"GET /page HTTP/1.1\r\nHost: " + b.host.encode() + b"\r\n"), got
    assert not a.conns


def test_map_remote_refuses_bad_specs(shunt):
    for spec, message in [("/x", "expected [/FILTER]/REGEX/REPLACEMENT"),
                          ("/~q/(unclosed/http://x/", "regex: column"),
                          ("/~zz/a/b/", "filter: column")]:
        px = shunt("--map-remote", spec, wait_listening=False)
        assert px.wait_exit() == 2
        assert message in px.stderr and len(px.stderr.strip().splitlines()) == 1, px.stderr


def test_map_local_serves_a_file_and_files_of_a_folder(shunt, origin, tmp_path):
    site = tmp_path / "site"
    (site / "js").mkdir(parents=True)
    (site / "js" / "app.js").write_bytes(b"console.log(1)")
    (site / "index.html").write_bytes(b"<p>home</p>")
    (site / "docs").mkdir()
    (site / "docs" / "index.html").write_bytes(b"<p>docs</p>")
    (site / "a b.txt").write_bytes(b"spaced")
    one = tmp_path / "one.json"
    one.write_bytes(b'{"ok": true}')
    (tmp_path / "secret").write_bytes(b"never served")
    px = shunt("--map-local", f"|~u /static/|/static/|{site}",
               "--map-local", f"|/config$|{one}")
    with px.client() as c:
        r = c.exchange(get(origin.host, "/static/js/app.js?v=3"))
        assert (r.status, r.get("Content-Type"), r.body) == (200, b"text/javascript", b"console.log(1)")
        assert c.exchange(get(origin.host, "/static/")).body == b"<p>home</p>"
        assert c.exchange(get(origin.host, "/static/docs")).body == b"<p>docs</p>"
        assert c.exchange(get(origin.host, "/static/a%20b.txt")).body == b"spaced"
        r = c.exchange(get(origin.host, "/config"))
        assert (r.status, r.get("Content-Type"), r.body) == (200, b"application/json", b'{"ok": true}')
        assert c.exchange(get(origin.host, "/static/missing.css")).status == 404
        # nothing outside the folder, however the name is spelled
        for path in ("/static/../secret", "/static/%2e%2e/secret", "/static/js/%2E%2E/../secret",
                     "/static/..%2fsecret", "/static/%00x"):
            r = c.exchange(get(origin.host, path))
            assert r.status == 404 and b"never served" not in r.body, path
        assert c.exchange(get(origin.host, "/elsewhere")).raw == OK  # not matched: the server
    assert not any(b"/static" in bytes(cn.received) for cn in origin.conns)


def test_map_local_group_names_the_file_and_filter_applies(shunt, origin, tmp_path):
    (tmp_path / "v2.txt").write_bytes(b"two")
    px = shunt("--map-local", rf"|~m GET|/api/(v\d\.txt)|{tmp_path}")
    with px.client() as c:
        assert c.exchange(get(origin.host, "/api/v2.txt?x=1")).body == b"two"  # the group names it
        r = c.exchange(get(origin.host, "/api/v2.txt", method=b"POST", body=b"x",
                           extra=b"Content-Length: 1\r\n"))
        assert r.raw == OK  # ~m GET does not match a POST: the server answers


def test_map_local_refuses_bad_specs(shunt, tmp_path):
    for spec, message in [("/x", "expected [/FILTER]/REGEX/PATH"),
                          (f"|~q|(unclosed|{tmp_path}", "regex: column"),
                          (f"|~zz|a|{tmp_path}", "filter: column"),
                          (f"|a|{tmp_path}/missing", "no such file or folder")]:
        px = shunt("--map-local", spec, wait_listening=False)
        assert px.wait_exit() == 2
        assert message in px.stderr and len(px.stderr.strip().splitlines()) == 1, px.stderr
