"""tlspeers.py - the TLS peers of the HTTPS tests (test_https.py): a test CA and its
certificates made with the openssl CLI, nginx serving them as TLS origins, a scripted TLS
origin and a TLS client in Python (for exact control of close_notify), shunt's own CA in a
temporary $XDG_DATA_HOME, and an Apache with mod_ssl beside the Kerberos realm.

Everything listens on 127.0.0.1 only; every wait is bounded by peers.WAIT. Made once per
session (the CA, nginx) or per test (the Python peers); the fixtures are imported by the
test files (`pki = tlspeers.pki`), as realm.py's are.
"""
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

import peers
from peers import PeerError, WAIT, free_port, need

CA_NAME = "shunt test CA"
# The names of the good leaf: localhost, the loopback address, and two more names that a
# test resolves to 127.0.0.1 in shunt's own /etc/hosts (hosts_wrap()).
NAMES = ("localhost", "a.shunt.test", "b.shunt.test")
IPS = ("127.0.0.1",)

CA_CNF = """\
[ca]
default_ca = test
[test]
dir = {d}
database = {d}/db/index.txt
new_certs_dir = {d}/db
serial = {d}/db/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
[any]
commonName = supplied
"""


def _run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=WAIT, **kw)
    if p.returncode != 0:
        raise PeerError(f"{' '.join(map(str, args))} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p.stdout


class PKI:
    """A test CA (EC P-256) and leaves signed by it, as PEM files in <d>:
    .ca (the CA certificate), and per leaf .cert(name) / .key(name):
      good     localhost, a.shunt.test, b.shunt.test, IP 127.0.0.1; valid for 30 days
      expired  the same names, valid in January 2024 only
      wrong    wrong.shunt.test only"""

    def __init__(self, d):
        self.openssl = need("openssl")
        self.dir = Path(d)
        (self.dir / "db").mkdir(parents=True)
        (self.dir / "db" / "index.txt").write_text("")
        (self.dir / "db" / "serial").write_text("1000\n")
        (self.dir / "ca.cnf").write_text(CA_CNF.format(d=self.dir))
        self.ca = self.dir / "ca.pem"
        self.ca_key = self.dir / "ca-key.pem"
        _run([self.openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "30", "-subj", f"/CN={CA_NAME}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        good_san = ",".join([f"DNS:{n}" for n in NAMES] + [f"IP:{a}" for a in IPS])
        self._leaf("good", "localhost", good_san, days=30)
        self._leaf("expired", "localhost", good_san, start="20240101000000Z", end="20240201000000Z")
        self._leaf("wrong", "wrong.shunt.test", "DNS:wrong.shunt.test", days=30)

    def _leaf(self, name, cn, san, days=None, start=None, end=None):
        key, csr, cert = (self.dir / f"{name}-key.pem", self.dir / f"{name}.csr", self.dir / f"{name}.pem")
        _run([self.openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}",
              "-addext", f"subjectAltName={san}", "-addext", "extendedKeyUsage=serverAuth"])
        dates = ["-days", str(days)] if days else ["-startdate", start, "-enddate", end]
        _run([self.openssl, "ca", "-batch", "-notext", "-config", self.dir / "ca.cnf", "-cert", self.ca,
              "-keyfile", self.ca_key, "-in", csr, "-out", cert] + dates)
        os.chmod(key, 0o644)  # Apache's children run as nobody when the tests run as root

    def cert(self, name):
        return self.dir / f"{name}.pem"

    def key(self, name):
        return self.dir / f"{name}-key.pem"

    def sha256(self, name_or_path):
        """The certificate's SHA-256 fingerprint as shunt records it: lower-case hex with
        colons."""
        p = name_or_path if isinstance(name_or_path, Path) else self.cert(name_or_path)
        out = _run([self.openssl, "x509", "-in", p, "-noout", "-fingerprint", "-sha256"])
        return out.strip().split("=", 1)[1].lower()


# ----------------------------------------------------------------------------- nginx over TLS

# What every TLS location answers: which name the client asked for (SNI), which server it
# reached, the connection's serial number at nginx and the request's number on it (pairing),
# and the X-Inside request header (rules).
TLS_BODY = ('"sni=$ssl_server_name port=$server_port conn=$connection n=$connection_requests '
            'proto=$ssl_protocol x-inside=$http_x_inside\\n"')

NGINX_TLS_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    default_type text/plain;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    ssl_protocols TLSv1.2 TLSv1.3;
{servers}
}}
"""

NGINX_TLS_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name _;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {d}/www;
        location /www/ {{ alias {d}/www/; }}
        location / {{ add_header X-Served-By nginx-tls; return 200 {body}; }}
    }}
"""


class TLSNginx:
    """nginx on loopback with one TLS server per leaf of <pki>: .port['good'],
    .port['expired'], .port['wrong']; .url(name, host='localhost') is its base URL. Every
    path answers TLS_BODY (parsed by fields()); /www/ serves files from .dir/www."""

    LEAVES = ("good", "expired", "wrong")

    def __init__(self, d, pki):
        nginx = need("/usr/sbin/nginx") if os.path.exists("/usr/sbin/nginx") else need("nginx")
        self.dir = Path(d)
        (self.dir / "www").mkdir(parents=True)
        for _ in range(5):  # free ports can be taken in between: retry
            self.port = {n: free_port() for n in self.LEAVES}
            servers = "".join(
                NGINX_TLS_SERVER.format(port=self.port[n], cert=pki.cert(n), key=pki.key(n), d=self.dir,
                                        body=TLS_BODY) for n in self.LEAVES)
            conf = self.dir / "nginx.conf"
            conf.write_text(NGINX_TLS_CONF.format(d=self.dir, servers=servers))
            self.proc = subprocess.Popen(
                [nginx, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._ready():
                break
        else:
            raise PeerError(f"nginx (TLS) did not start: {self.log()}")

    def _ready(self):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                for p in self.port.values():
                    socket.create_connection(("127.0.0.1", p), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.02)
        self.stop()
        return False

    def url(self, leaf="good", host="localhost"):
        return f"https://{host}:{self.port[leaf]}"

    def log(self):
        try:
            return (self.dir / "error.log").read_text()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)


def fields(body):
    """TLS_BODY lines parsed: a list of {key: value}, one per line."""
    text = body.decode() if isinstance(body, bytes) else body
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv))
    return out


# ----------------------------------------------------------------------------- Python TLS peers


class TLSSock:
    """An SSLSocket as peers.Reader and the Origin want a socket: recv() returns b'' at the
    end and notes how it ended in .tls_end: 'close_notify' (the peer's close_notify came
    first) or 'truncated' (TCP closed without it); sendall, shutdown(SHUT_WR) sends
    close_notify (unwrap) then FIN."""

    def __init__(self, ssock):
        self.s = ssock
        self.tls_end = None
        self.raw = None  # the plain socket after unwrap()

    def recv(self, n):
        if self.raw is not None:
            return self.raw.recv(n)
        try:
            d = self.s.recv(n)
        except ssl.SSLZeroReturnError:
            d = b""
        except ssl.SSLError as e:
            # the TCP end without close_notify: SSLEOFError, or (OpenSSL 3 under Python
            # 3.11) an SSLError whose reason says so
            if not isinstance(e, ssl.SSLEOFError) and getattr(e, "reason", "") != "UNEXPECTED_EOF_WHILE_READING":
                raise
            self.tls_end = self.tls_end or "truncated"
            return b""
        if not d and self.tls_end is None:
            self.tls_end = "close_notify"
        return d

    def sendall(self, data):
        self.s.sendall(data)

    def close_notify(self):
        """Sends close_notify and FIN; reading goes on, on the plain socket."""
        try:
            self.raw = self.s.unwrap()  # waits for the peer's close_notify only if ours was second
        except (ssl.SSLError, OSError):
            self.raw = None
        sock = self.raw or self.s
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def shutdown(self, how):
        if how == socket.SHUT_WR:
            self.close_notify()
        else:
            self.s.shutdown(how)

    def setsockopt(self, *a):
        self.s.setsockopt(*a)

    def getsockname(self):
        return self.s.getsockname()

    def settimeout(self, t):
        self.s.settimeout(t)

    def close(self):
        """Closes without close_notify (a truncation, as the peer sees it)."""
        try:
            (self.raw or self.s).close()
        except OSError:
            pass


def _strict_eof(ctx):
    """Debian's Python 3.11 ignores an unexpected EOF by default (a truncation reads as a
    clean end): the tests tell the two apart, so it must raise."""
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


def server_context(pki, leaf="good"):
    ctx = _strict_eof(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_cert_chain(pki.cert(leaf), pki.key(leaf))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class TLSOrigin(peers.Origin):
    """peers.Origin over TLS with <pki>'s good leaf: handlers get an OriginConn whose .sock
    is a TLSSock (conn.sock.close_notify() ends cleanly, conn.close() truncates; after the
    peer's end conn.sock.tls_end says how it ended). .handshakes counts those that
    completed; .sni lists the names the clients asked for."""

    def __init__(self, pki, handler=None, leaf="good"):
        self.ctx = server_context(pki, leaf)
        self.sni = []
        self.handshakes = 0
        self.ctx.sni_callback = self._on_sni
        super().__init__(handler)
        self.url = f"https://localhost:{self.port}"

    def _on_sni(self, sslobj, name, ctx):
        self.sni.append(name)

    def _accept(self):
        while True:
            try:
                s, peer = self.lsock.accept()
            except OSError:
                return
            s.settimeout(WAIT)
            t = threading.Thread(target=self._handshake_then_serve, args=(s, peer), daemon=True)
            t.start()
            self._threads.append(t)

    def _handshake_then_serve(self, s, peer):
        try:
            ss = self.ctx.wrap_socket(s, server_side=True, suppress_ragged_eofs=False)
        except (ssl.SSLError, OSError) as e:
            with self.cond:
                self.errors.append(f"TLS handshake from :{peer[1]}: {e!r}")
                self.cond.notify_all()
            s.close()
            return
        ss.settimeout(None)
        c = peers.OriginConn(self, TLSSock(ss), peer)
        with self.cond:
            if self.closing:
                ss.close()
                return
            self.handshakes += 1
            self.conns.append(c)
            self.cond.notify_all()
        self._serve(c)

    def close(self):
        with self.cond:
            self.closing = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for c in list(self.conns):
            try:
                c.sock.s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.sock.close()
        for t in self._threads:
            t.join(WAIT)


def client_context(cafile):
    ctx = _strict_eof(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.load_verify_locations(cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class TLSClient(peers.Client):
    """A client through shunt: CONNECT host:port, then TLS with SNI <host> trusting <cafile>
    (shunt's CA); .send/.response/.exchange as peers.Client, over TLS. .connect_response is
    the answer to the CONNECT; .close_notify() ends cleanly, .close() truncates;
    .wait_eof() returns (bytes, 'close_notify'|'truncated')."""

    def __init__(self, proxy_port, host, port, cafile, sni=None, timeout=WAIT):
        super().__init__(proxy_port, timeout=timeout)
        target = f"{host}:{port}".encode()
        self.send(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n")
        self.connect_response = self.response(method="CONNECT")
        if self.connect_response is None or self.connect_response.status != 200:
            raise AssertionError(f"CONNECT {target!r}: {self.connect_response!r}")
        assert not self.r.buf, "bytes after the CONNECT's 200"
        ss = client_context(cafile).wrap_socket(self.sock, server_hostname=sni or host,
                                                suppress_ragged_eofs=False)
        self.tls = TLSSock(ss)
        self.r = peers.Reader(self.tls)

    def send(self, data):
        (self.tls if hasattr(self, "tls") else self.sock).sendall(data)

    def close_notify(self):
        self.tls.close_notify()

    def wait_eof(self):
        extra = self.r.read_to_eof()
        return extra, self.tls.tls_end

    def close(self):
        if hasattr(self, "tls"):
            self.tls.close()
        else:
            super().close()


def request(host, path="/", extra=b""):
    """An origin-form request for <host> (inside TLS)."""
    h = host.encode() if isinstance(host, str) else host
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + h + b"\r\n" + extra + b"\r\n"


# ----------------------------------------------------------------------------- shunt's side


def hosts_wrap(tmp_path):
    """A wrapper running shunt in a mount namespace whose /etc/hosts names a.shunt.test and
    b.shunt.test 127.0.0.1 (the machine's file is left alone); None when it cannot."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost a.shunt.test b.shunt.test\n")
    wrap = ["unshare", "-m", "sh", "-c", f'mount --bind "{hosts}" /etc/hosts && exec "$@"', "sh"]
    try:
        out = subprocess.run(wrap + ["getent", "hosts", "a.shunt.test"], capture_output=True,
                             timeout=WAIT, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return wrap if out.returncode == 0 and "127.0.0.1" in out.stdout else None


class ShuntCA:
    """shunt's CA, made by shunt itself on first use in a temporary $XDG_DATA_HOME: .env is
    what a shunt process gets; .cert is the CA certificate's path (there once a proxy with
    --intercept started: wait())."""

    def __init__(self, d):
        self.home = Path(d)
        self.env = {"XDG_DATA_HOME": str(self.home)}
        self.cert = self.home / "shunt" / "ca.pem"
        self.key = self.home / "shunt" / "ca-key.pem"

    def wait(self):
        peers.wait_for(lambda: self.cert.exists() and self.cert.stat().st_size > 0,
                       what=f"shunt's CA at {self.cert}")
        return self.cert


# ----------------------------------------------------------------------------- Apache over TLS


def https_apache(realm, pki):
    """A second Apache beside the realm's (realm.py), the same configuration with mod_ssl on
    another port serving <pki>'s good leaf. Returns (base URL https://localhost:PORT, a
    function giving its access log lines as realm.AccessLine, the process); the caller
    ends the process."""
    import realm as krb

    d = realm.dir
    sd = d / "httpsd"
    sd.mkdir(exist_ok=True)
    shutil.copy(pki.cert("good"), sd / "cert.pem")
    shutil.copy(pki.key("good"), sd / "key.pem")
    for _ in range(5):
        port = free_port()
        user = ""
        if not realm._as:
            import grp
            import pwd
            user = (f"User {pwd.getpwuid(os.getuid()).pw_name}\n"
                    f"Group {grp.getgrgid(os.getgid()).gr_name}")
        conf = krb.HTTPD_CONF.format(d=d, m=krb.MODULES, listen=f"Listen 127.0.0.1:{port} https",
                                     user=user).replace(f"{d}/httpd", str(sd))
        conf += (f"LoadModule ssl_module {krb.MODULES}/mod_ssl.so\n"
                 f"LoadModule socache_shmcb_module {krb.MODULES}/mod_socache_shmcb.so\n"
                 f"SSLSessionCache shmcb:{sd}/ssl_scache(512000)\n"
                 f"SSLEngine on\nSSLCertificateFile {sd}/cert.pem\n"
                 f"SSLCertificateKeyFile {sd}/key.pem\n")
        (sd / "httpd.conf").write_text(conf)
        realm._chown_all()
        proc = realm._start("apache2 (TLS)", [krb._which("apache2"), "-f", str(sd / "httpd.conf"),
                                              "-DFOREGROUND"], port)
        if proc:
            break
    else:
        raise PeerError(f"apache2 with mod_ssl did not start: {realm._tail(sd / 'error.log')}")

    def access_log():
        try:
            text = (sd / "access.log").read_text()
        except FileNotFoundError:
            return []
        return [krb.AccessLine(l) for l in text.splitlines() if l.strip()]

    return f"https://localhost:{port}", access_log, proc


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_nginx(tmp_path_factory, pki):
    n = TLSNginx(tmp_path_factory.mktemp("nginx-tls"), pki)
    yield n
    n.stop()


@pytest.fixture(scope="session")
def shunt_ca(tmp_path_factory):
    return ShuntCA(tmp_path_factory.mktemp("xdg-data"))


@pytest.fixture
def tls_origins(pki):
    """A factory of scripted TLS origins: tls_origins(handler=None, leaf='good')."""
    made = []

    def make(handler=None, leaf="good"):
        o = TLSOrigin(pki, handler, leaf)
        made.append(o)
        return o

    yield make
    errors = []
    for o in made:
        o.close()
        errors += [e for e in o.errors if "handler failed" in e]
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
