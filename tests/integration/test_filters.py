"""test_filters.py - filter expressions in the views of a capture: `shunt sessions FILE FILTER`,
`shunt connections FILE FILTER`, `shunt export FILE --har OUT FILTER`. Expressions x known
capture rows -> the ids they select (captures.py writes the rows); heads as sent before heads
as received; bodies; combination with --host/--status/--conn and paging; syntax errors (one
line, exit 2); and traffic recorded through the real proxy."""
import json
import os

import pytest

import captures
import peers
from captures import T0, Capture, head
from peers import get, reply_with, response

ENV = dict(os.environ, TZ="UTC", COLUMNS="120")
ENV.pop("PAGER", None)


def run(*args, cwd=None):
    """Runs `shunt ARGS`; returns (status, stdout, stderr) as text."""
    import subprocess

    p = subprocess.run([peers.SHUNT_BIN, *[str(a) for a in args]], capture_output=True, env=ENV,
                       cwd=cwd, timeout=peers.WAIT * 3)
    assert not peers.SANITIZER_RE.search(p.stderr.decode(errors="replace")), p.stderr.decode()
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def ids(*args, cwd=None):
    """The exchange ids `shunt sessions ARGS --json` selects."""
    rc, out, err = run("sessions", *args, "--json", cwd=cwd)
    assert (rc, err) == (0, ""), (args, rc, err)
    return [e["id"] for e in json.loads(out)["exchanges"]]


def conn_ids(*args):
    rc, out, err = run("connections", *args, "--json")
    assert (rc, err) == (0, ""), (args, rc, err)
    return [c["id"] for c in json.loads(out)["connections"]]


def har_ids(tmp_path, cap, *args):
    out = tmp_path / "f.har"
    rc, _, err = run("export", cap, "--har", out, *args)
    assert rc == 0, err
    return [e["_shunt"]["id"] for e in json.loads(out.read_text())["log"]["entries"]]


@pytest.fixture(scope="module")
def cap(tmp_path_factory):
    """captures.sample() (exchanges 1-6, see there), plus on a fourth connection:
    7, a request still waiting for its response (no status, no response head), and
    8, an imported HTTP/2 exchange whose heads the strict parser refuses."""
    path = tmp_path_factory.mktemp("filters") / "f.db"
    captures.sample(path)
    import sqlite3

    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("INSERT INTO connections (id, client_port, opened_us, closer, close_how)"
               " VALUES (4, 50004, ?, 'proxy', 'timeout')", (T0 + 5_000_000,))
    cols = ("id, conn_id, idx, started_us, method, url, host, path, http_version, status,"
            " req_head, resp_head, error")
    db.execute(f"INSERT INTO exchanges ({cols}) VALUES (7, 4, 1, ?, 'PUT',"
               " 'http://api.example.com/v1/items/9', 'api.example.com', '/v1/items/9',"
               " 'HTTP/1.1', NULL, ?, NULL, NULL)",
               (T0 + 5_000_100, head(b"PUT /v1/items/9 HTTP/1.1", b"Host: api.example.com",
                                     b"Content-Type: application/xml", b"Content-Length: 9")))
    db.execute("INSERT INTO bodies VALUES (7, 0, 0, ?)", (b"<a>9</a>\n",))
    db.execute(f"INSERT INTO exchanges ({cols}) VALUES (8, 4, 2, ?, 'GET',"
               " 'https://cdn.example.com/app.js', 'cdn.example.com', '/app.js', 'HTTP/2',"
               " 200, ?, ?, NULL)",
               (T0 + 5_000_200, head(b"GET /app.js HTTP/2", b"host: cdn.example.com"),
                head(b"HTTP/2 200", b"content-type: text/javascript", b"server: cdn")))
    db.close()
    return path


# ----------------------------------------------------------------------------- expressions

CASES = [
    ("~all", [1, 2, 3, 4, 5, 6, 7, 8]),
    ("~q", [7]),
    ("~s", [1, 2, 3, 4, 5, 6, 8]),
    ("~c 200", [1, 2, 5, 6, 8]),
    ("~c 502", [4]),
    ("~e", [4]),
    ("~m post", [3]),
    ("~m '^(PUT|CONNECT)$'", [5, 7]),             # a bare word would end at the (
    ("~d other", [4]),
    ("~d '^secure\\.test$'", [5]),
    ("~d example\\.com$", [7, 8]),
    ("~u /api/", [3]),
    ("~u '^https:'", [8]),
    ("items/9", [7]),                             # a bare regex is a URL regex
    ("~t json", [3]),
    ("~tq xml", [7]),
    ("~ts html", [1]),
    ("~t javascript", [8]),                       # lenient fallback for the HTTP/2 head
    ("~a", [2, 8]),                               # image/png, text/javascript
    ("~h '^server: cdn$'", [8]),
    # Heads as sent when the capture has them: exchange 1's request lost Proxy-Connection
    # on the way, exchange 3's response lost "Server: test" and gained X-Debug.
    ("~hq proxy-connection", []),
    ("~hq '^accept: \\*/\\*$'", [1]),
    ("~hs 'server: test'", []),
    ("~hs 'x-debug: shunt'", [3]),
    ("~h 'content-length: 0'", [3, 4, 6]),
    ("~b hello", [1]),
    ("~bs 'h.llo été'", [1]),                     # UTF-8 in the pattern, bytes in the body
    ("~bs PNG", [2]),
    ("~bq xxxx", [3]),
    ("~bq '<a>9'", [7]),
    ("~bs '<a>9'", []),                           # no response: no response body
    ("~b '^\\{\"name\"'", [3]),
    ("~conn 2", [3, 4]),
    ("~auth", [3, 4]),
    ("~closed client", [1, 2]),
    ("~closed server", [3, 4]),
    ("~closed proxy", [7, 8]),
    ("!~s", [7]),
    ("~s & ~c 200 | ~e", [1, 2, 4, 5, 6, 8]),
    ("~e | ~c 201 & ~auth", [3, 4]),
    ("!(~c 200 | ~c 201)", [4, 7]),
    ("~d origin ~c 200", [1, 2, 6]),             # juxtaposition is &
    ("~s ~c 201 | ~e", [3, 4]),                   # ~s & (~c 201 | ~e)
    ("~auth ~closed server ~c 502", [4]),
    ("(~conn 1 | ~conn 3) !~u slow", [1, 2, 5]),
]


@pytest.mark.parametrize("expr,want", CASES, ids=[c[0] for c in CASES])
def test_sessions_filter_takes_the_exchanges_the_expression_matches(cap, expr, want):
    assert ids(cap, expr) == want


def test_the_filter_and_the_options_combine_with_and(cap):
    assert ids(cap, "~c 200", "--host", "origin.test") == [1, 2, 6]
    assert ids(cap, "~c 200", "--conn", "3") == [5, 6]
    assert ids(cap, "--status", "200", "~d secure") == [5]
    assert ids(cap, "~auth", "--status", "200") == []


def test_limit_and_offset_page_through_what_the_filter_takes(cap):
    assert ids(cap, "~c 200", "--limit", "2") == [1, 2]
    assert ids(cap, "~c 200", "--offset", "2", "--limit", "2") == [5, 6]
    assert ids(cap, "~c 200", "--offset", "1001") == []  # not the dense-id shortcut


def test_the_table_shows_the_rows_the_filter_takes(cap):
    rc, out, err = run("sessions", cap, "~m connect | ~q")
    assert (rc, err) == (0, "")
    rows = [l.split()[:8] for l in out.splitlines()[1:]]
    # issue 11: a CONNECT's host is shown as its target, host:port
    assert rows == [["5", "3", "1", "50003", "CONNECT", "secure.test:443", "secure.test:443", "200"],
                    ["7", "4", "1", "50004", "PUT", "api.example.com", "/v1/items/9", "-"]]


def test_connections_takes_those_with_an_exchange_that_matches(cap):
    assert conn_ids(cap, "~e") == [2]
    assert conn_ids(cap, "~c 200") == [1, 3, 4]
    assert conn_ids(cap, "~closed proxy | ~auth") == [2, 4]
    assert conn_ids(cap, "~c 200", "--conn", "3") == [3]
    assert conn_ids(cap, "~m DELETE") == []


def test_export_takes_the_filter(tmp_path, cap):
    assert har_ids(tmp_path, cap, "~c 200 & ~d origin") == [1, 2, 6]
    assert har_ids(tmp_path, cap, "~bq xxxx | ~e") == [3, 4]
    assert har_ids(tmp_path, cap, "~s", "--conn", "4") == [8]
    assert har_ids(tmp_path, cap) == [1, 2, 3, 4, 5, 6, 7, 8]


# ----------------------------------------------------------------------------- FILE, FILTER


def test_a_lone_filter_reads_the_default_capture(cap, tmp_path):
    (tmp_path / "shunt.db").write_bytes(cap.read_bytes())
    assert ids("~e", cwd=tmp_path) == [4]
    assert ids("!~s", cwd=tmp_path) == [7]
    assert ids("(~conn 2)", cwd=tmp_path) == [3, 4]
    assert ids("'slow'", cwd=tmp_path) == [6]
    assert ids("~c 200", "--conn", "1", cwd=tmp_path) == [1, 2]


def test_a_lone_argument_that_names_a_file_is_the_file(cap, tmp_path):
    odd = tmp_path / "~odd name.db"
    odd.write_bytes(cap.read_bytes())
    assert ids(odd) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ids(odd, "~q") == [7]


def test_a_lone_word_is_the_file(tmp_path):
    """A bare URL regex alone would be ambiguous: it is read as the file; name the file, or
    write ~u, to filter by URL."""
    rc, out, err = run("sessions", "google", cwd=tmp_path)
    assert (rc, out) == (2, "") and err.startswith("shunt sessions: google: ") and \
        err.count("\n") == 1, err


BAD = [
    (["sessions", "{f}", "~q &"], "shunt sessions: filter: column 5: expected a filter after &,"
                                  " found the end"),
    (["sessions", "{f}", "~c 20"], "shunt sessions: filter: column 4: ~c needs a status code"
                                   " (100-999)"),
    (["sessions", "{f}", "(~s | ~x)"], "shunt sessions: filter: column 7: unknown filter ~x"),
    (["sessions", "{f}", "~d 'a(b'"], "shunt sessions: filter: column 4: ~d: bad regular"
                                      " expression: missing closing parenthesis (at offset 3 of"
                                      " the pattern)"),
    (["sessions", "~q )"], "shunt sessions: filter: column 4: unexpected ) without a matching ("),
    (["sessions", "{f}", "~q", "more"], "shunt sessions: unexpected argument 'more' (see --help)"),
    (["connections", "{f}", "~closed nowhere"], "shunt connections: filter: column 9: ~closed"
                                                " needs client, server or proxy"),
    (["export", "{f}", "--har", "-", "~src 1.2.3.4"], "shunt export: filter: column 1: ~src is"
                                                      " a mitmproxy filter that shunt does not"
                                                      " have"),
    (["export", "{f}", "--har", "-", "~q", "x"], "shunt export: unexpected argument 'x' (one FILE"
                                                 " and one FILTER)\n(`shunt export --help` tells"
                                                 " more)"),
]


@pytest.mark.parametrize("args,msg", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_filter_or_argument_is_reported_with_status_2(cap, args, msg):
    rc, out, err = run(*[a.format(f=cap) for a in args])
    assert (rc, out, err) == (2, "", msg + "\n")


def test_show_takes_no_filter(cap):
    rc, out, err = run("show", cap, "1", "~q")
    assert (rc, out, err) == (2, "", "shunt show: unexpected argument '~q' (see --help)\n")


# ----------------------------------------------------------------------------- recorded


def test_recorded_traffic_is_filtered_by_heads_and_bodies(shunt, origins, tmp_path):
    origin = origins(reply_with(
        response(b"200 OK", [b"Content-Type: application/json", b"Server: Microsoft-IIS/6.0"],
                 b'{"ok": true}'),
        response(b"404 Not Found", [b"Content-Type: text/html"], b"<h1>gone</h1>"),
        response(b"401 Unauthorized", [b"WWW-Authenticate: NTLM"], b""),
    ))
    path = tmp_path / "rec.db"
    px = shunt("--capture", path)
    with px.client() as c:
        c.exchange(get(origin.host, "/api", b"Content-Type: application/json\r\n"
                                            b"Content-Length: 15\r\n", method=b"POST",
                       body=b'{"name":"Pat"}\n'))
        c.exchange(get(origin.host, "/missing"))
        c.exchange(get(origin.host, "/secret"))

    def recorded():
        rc, out, _ = run("sessions", path, "--json")
        return rc == 0 and len(json.loads(out)["exchanges"]) == 3

    peers.wait_for(recorded, what="three exchanges in the capture")
    assert ids(path, "~hs 'server: microsoft-iis'") == [1]
    assert ids(path, "~bq '\"name\":\"pat\"'") == [1]
    assert ids(path, "~bs gone") == [2]
    assert ids(path, "~c 404 | ~c 401") == [2, 3]
    assert ids(path, "~m post ~t json") == [1]
    assert ids(path, "~hs www-authenticate ~u /secret$") == [3]
    assert ids(path, "~d '^127\\.0\\.0\\.1$' !~c 200") == [2, 3]
