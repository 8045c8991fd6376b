-- src/capture/schema.sql - the capture file (SQLite). user_version is the schema version;
-- application_id 0x73686e74 ("shnt") marks a file as a shunt capture. Times are wall-clock
-- microseconds since the Unix epoch; durations are microseconds, -1 when not applicable
-- (HAR's convention). Text columns are UTF-8; wire bytes are BLOBs, never normalised.
PRAGMA application_id = 1936223860;
PRAGMA user_version = 2;

-- The capture's own facts: one row.
CREATE TABLE capture (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    shunt_version   TEXT NOT NULL,
    command_line    TEXT NOT NULL,       -- as typed, arguments joined by spaces
    source          TEXT NOT NULL,       -- 'proxy', or 'har' for an import
    source_detail   TEXT,                -- for an import: the HAR's creator "name version"
    started_us      INTEGER NOT NULL,
    stopped_us      INTEGER,             -- NULL while recording, or when the proxy died
    body_limit      INTEGER NOT NULL,    -- bytes of each body kept
    events_dropped  INTEGER NOT NULL DEFAULT 0  -- > 0: the capture is incomplete
);

-- Client connections (for an import: the connections the HAR lets us infer).
CREATE TABLE connections (
    id              INTEGER PRIMARY KEY, -- shunt's connection id
    client_addr     TEXT,
    client_port     INTEGER,
    listen_addr     TEXT,
    listen_port     INTEGER,
    opened_us       INTEGER,
    closed_us       INTEGER,             -- NULL: still open at the end, or unknown
    closer          TEXT,                -- 'client' | 'server' | 'proxy' | NULL (unknown)
    close_how       TEXT,                -- 'FIN' | 'RST' | 'timeout' | 'error' | NULL (unknown)
    bytes_in        INTEGER,             -- from the client
    bytes_out       INTEGER,             -- to the client
    tls             INTEGER NOT NULL DEFAULT 0, -- the client spoke TLS to shunt (intercepted)
    tunnel          INTEGER NOT NULL DEFAULT 0, -- became a byte tunnel (CONNECT, 101)
    n_exchanges     INTEGER NOT NULL DEFAULT 0,
    auth_scheme     TEXT                 -- 'NTLM' | 'Negotiate' | 'Basic' | ... first seen, or NULL
);

-- Upstream connections; a client connection has one per origin it talked to.
CREATE TABLE upstreams (
    id              INTEGER PRIMARY KEY,
    conn_id         INTEGER NOT NULL,    -- connections.id
    host            TEXT,                -- origin as the request named it
    port            INTEGER,
    addr            TEXT,                -- address connected to
    remote_port     INTEGER,
    local_port      INTEGER,             -- our side: the port the origin saw
    opened_us       INTEGER,
    closed_us       INTEGER,
    closer          TEXT,
    close_how       TEXT,
    bytes_in        INTEGER,             -- from the server
    bytes_out       INTEGER              -- to the server
);
CREATE INDEX upstreams_conn ON upstreams (conn_id);

-- Exchanges: one request and its response (interim 1xx heads in resp_interim).
CREATE TABLE exchanges (
    id              INTEGER PRIMARY KEY,
    conn_id         INTEGER NOT NULL,    -- connections.id
    idx             INTEGER NOT NULL,    -- 1, 2, ... on that connection
    upstream_id     INTEGER,             -- upstreams.id; NULL when shunt answered itself
    upstream_reused INTEGER,             -- 0 new, 1 reused, NULL unknown
    started_us      INTEGER NOT NULL,    -- request head complete
    method          TEXT,
    url             TEXT,                -- absolute URL (http://host:port/path)
    host            TEXT,                -- lower case, no port
    path            TEXT,                -- path and query
    http_version    TEXT,                -- 'HTTP/1.1'
    status          INTEGER,             -- final status sent to the client; NULL when none
    req_head        BLOB,                -- request head as received (through the empty line)
    req_head_sent   BLOB,                -- as sent upstream; NULL when identical
    resp_head       BLOB,                -- final response head as received
    resp_head_sent  BLOB,                -- as sent to the client; NULL when identical
    resp_interim    BLOB,                -- 1xx heads as received, concatenated; NULL when none
    req_body_size   INTEGER NOT NULL DEFAULT 0,  -- decoded body bytes (chunk framing removed)
    resp_body_size  INTEGER NOT NULL DEFAULT 0,
    req_bytes       INTEGER NOT NULL DEFAULT 0,  -- on the wire from the client, head included
    resp_bytes      INTEGER NOT NULL DEFAULT 0,  -- on the wire to the client, head included
    t_blocked       INTEGER NOT NULL DEFAULT -1, -- HAR timings, microseconds
    t_dns           INTEGER NOT NULL DEFAULT -1,
    t_connect       INTEGER NOT NULL DEFAULT -1, -- TCP connect plus t_ssl (HAR 1.2)
    t_send          INTEGER NOT NULL DEFAULT 0,
    t_wait          INTEGER NOT NULL DEFAULT 0,
    t_receive       INTEGER NOT NULL DEFAULT 0,
    duration_us     INTEGER NOT NULL DEFAULT 0,  -- request head complete to exchange done
    error           TEXT,                -- NULL, or what went wrong
    flags           INTEGER NOT NULL DEFAULT 0,  -- 1 changed, 2 error, 4 body truncated, 8 tunnel
    -- version 2 on (last: a version-1 file opened to write gets it there): the TLS handshake
    -- with the upstream, included in t_connect
    t_ssl           INTEGER NOT NULL DEFAULT -1
);
CREATE INDEX exchanges_conn ON exchanges (conn_id, idx);
CREATE INDEX exchanges_host ON exchanges (host);
CREATE INDEX exchanges_status ON exchanges (status);

-- The first body_limit bytes of each non-empty body, decoded from chunked framing (not
-- from Content-Encoding).
CREATE TABLE bodies (
    exchange_id     INTEGER NOT NULL,    -- exchanges.id
    direction       INTEGER NOT NULL,    -- 0 request, 1 response
    truncated       INTEGER NOT NULL,    -- 1 when the body was longer than data (before data:
                                         -- reading it does not read past the body)
    data            BLOB NOT NULL,
    PRIMARY KEY (exchange_id, direction)
) WITHOUT ROWID;

-- Every change shunt or a rule made to a head.
CREATE TABLE changes (
    id              INTEGER PRIMARY KEY,
    exchange_id     INTEGER NOT NULL,
    in_request      INTEGER NOT NULL,    -- 1 request head, 0 response head
    what            TEXT NOT NULL,       -- e.g. 'remove Proxy-Connection'
    by              TEXT NOT NULL        -- 'proxy', or the rule's name
);
CREATE INDEX changes_exchange ON changes (exchange_id);

-- Version 2 on. TLS handshakes, done or failed: one row per side of a connection that spoke
-- TLS (the client's, intercepted: upstream_id NULL; an upstream's). Every text is the peer's
-- or OpenSSL's, untrusted; NULL when unknown. db.c makes this table in a version-1 file
-- opened to write (SHUNT_CAPTURE_TLS_TABLE: keep the two the same).
CREATE TABLE tls (
    id              INTEGER PRIMARY KEY,
    conn_id         INTEGER NOT NULL,    -- connections.id
    upstream_id     INTEGER,             -- upstreams.id; NULL for the client's side
    side            INTEGER NOT NULL,    -- 0 shunt was the server (the client's TLS), 1 the client
    time_us         INTEGER,             -- when the handshake ended
    sni             TEXT,                -- the server name asked for (client side: the client's)
    alpn            TEXT,                -- the protocol agreed, 'http/1.1'
    version         TEXT,                -- 'TLSv1.3'
    cipher          TEXT,                -- 'TLS_AES_128_GCM_SHA256'
    cert_subject    TEXT,                -- the server side's certificate (client side: shunt's
    cert_issuer     TEXT,                --   leaf; upstream side: the origin's), RFC 2253
    cert_san        TEXT,                -- 'DNS:a.example, IP:127.0.0.1'
    cert_sha256     TEXT,                -- fingerprint, lower-case hex with colons
    cert_not_before INTEGER,             -- unix seconds
    cert_not_after  INTEGER,
    handshake_us    INTEGER,             -- first byte of the handshake to its end
    error           TEXT,                -- NULL: done; else why it failed, whole
    verify_result   INTEGER,             -- upstream side: OpenSSL's X509_V_* (0 ok)
    insecure        INTEGER NOT NULL DEFAULT 0, -- upstream side: verification was off
    close_bits      INTEGER              -- how the TLS ended (1 close_notify received, 2 sent,
                                         -- 4 truncated: TCP closed without it, 8 TLS used);
                                         -- NULL: not closed (yet)
);
CREATE INDEX tls_conn ON tls (conn_id);
