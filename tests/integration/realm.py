"""realm.py - a real Kerberos realm and a real Negotiate server on loopback, for the tests
that prove pairing keeps integrated authentication working (test_realm.py) and for a real
capture to test `shunt diagnose` on (capture_negotiate).

Realm() builds, in a temporary folder of its own:
  - an MIT Kerberos realm SHUNT.TEST: krb5.conf (KRB5_CONFIG), kdc.conf (KRB5_KDC_PROFILE),
    a database made by kdb5_util, principals alice (password ALICE_PASSWORD) and
    HTTP/localhost made by kadmin.local, a keytab for HTTP/localhost, and krb5kdc in the
    foreground (-n) on a free loopback port;
  - Apache (apache2 -f OWN_CONF -DFOREGROUND) on a free loopback port with mod_auth_gssapi:
    /every/ authenticates every request, /bound/ is connection-bound
    (GssapiConnectionBound On): once a connection authenticated, its later requests are
    served as that user without credentials. Every response carries
    X-Remote-User: the user it was served as (empty: nobody). The access log records, per
    request, the port of the connection that carried it, the status, the user and whether
    the request carried Authorization (AccessLine).
  - a credential cache (KRB5CCNAME) that kinit() fills with alice's ticket.
Processes are started by the test, never daemonized, and ended by pid at stop(). As root,
every one of them (kdb5_util, kadmin.local, krb5kdc, apache2) runs as `nobody`; only the
test's own clients (kinit, curl) and shunt run as the test's user.

Only Debian packages: krb5-kdc, krb5-admin-server, krb5-user, apache2,
libapache2-mod-auth-gssapi, curl (with GSS-API). missing() names what is absent.
"""
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import peers
from peers import PeerError, WAIT, free_port

REALM = "SHUNT.TEST"
ALICE_PASSWORD = "alice-pw-1"
MODULES = "/usr/lib/apache2/modules"
PROGRAMS = {  # program -> the Debian package that provides it
    "krb5kdc": "krb5-kdc",
    "kdb5_util": "krb5-kdc",
    "kadmin.local": "krb5-admin-server",
    "kinit": "krb5-user",
    "apache2": "apache2",
    "curl": "curl",
}

KRB5_CONF = """\
[libdefaults]
  default_realm = {realm}
  dns_canonicalize_hostname = false
  rdns = false
  dns_lookup_kdc = false
  dns_lookup_realm = false
  udp_preference_limit = 1
[realms]
  {realm} = {{
    kdc = 127.0.0.1:{kdc_port}
  }}
[domain_realm]
  localhost = {realm}
"""

KDC_CONF = """\
[kdcdefaults]
  kdc_listen = 127.0.0.1:{kdc_port}
  kdc_tcp_listen = 127.0.0.1:{kdc_port}
[realms]
  {realm} = {{
    database_name = {d}/kdc/principal
    key_stash_file = {d}/kdc/stash
    acl_file = {d}/kdc/kadm5.acl
  }}
[logging]
  kdc = FILE:{d}/kdc/kdc.log
"""

# The access log: one tab-separated line a request (see AccessLine).
HTTPD_CONF = """\
ServerRoot {d}/httpd
ServerName localhost
{listen}
PidFile {d}/httpd/httpd.pid
DefaultRuntimeDir {d}/httpd
ErrorLog {d}/httpd/error.log
LogLevel info
LoadModule mpm_event_module {m}/mod_mpm_event.so
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule headers_module {m}/mod_headers.so
LoadModule auth_gssapi_module {m}/mod_auth_gssapi.so
{user}
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
LogFormat "%{{remote}}p\\t%m\\t%U\\t%>s\\t%u\\t%{{Authorization}}i" realm
CustomLog {d}/httpd/access.log realm
DocumentRoot {d}/www
Header always set X-Remote-User "expr=%{{REMOTE_USER}}"
<Location /every>
  AuthType GSSAPI
  AuthName "every request"
  GssapiCredStore keytab:{d}/http.keytab
  Require valid-user
</Location>
<Location /bound>
  AuthType GSSAPI
  AuthName "connection-bound"
  GssapiCredStore keytab:{d}/http.keytab
  GssapiConnectionBound On
  Require valid-user
</Location>
"""


def missing():
    """None when everything the realm needs is installed, else what is missing (a reason
    to skip, with the install line)."""
    absent = sorted({pkg for prog, pkg in PROGRAMS.items()
                     if not (shutil.which(prog) or os.access(f"/usr/sbin/{prog}", os.X_OK))})
    for mod, pkg in (("mod_auth_gssapi.so", "libapache2-mod-auth-gssapi"),
                     ("mod_mpm_event.so", "apache2"), ("mod_headers.so", "apache2")):
        if not os.path.exists(f"{MODULES}/{mod}"):
            absent.append(pkg)
    if not absent and shutil.which("curl"):
        v = subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout
        if "GSS-API" not in v and "SPNEGO" not in v:
            return "curl has no GSS-API/SPNEGO support"
    if absent:
        pkgs = " ".join(sorted(set(absent)))
        return (f"the Kerberos realm needs Debian packages that are not installed: {pkgs} "
                f"(scripts/deps.sh check installs them)")
    return None


def _which(prog):
    return shutil.which(prog) or f"/usr/sbin/{prog}"


class AccessLine:
    """One request as Apache logged it: port (the peer port of the connection that carried
    it, i.e. shunt's upstream port), method, path, status, user ('' if none), auth (True if
    the request carried Authorization)."""

    def __init__(self, line):
        f = line.rstrip("\n").split("\t")
        self.port = int(f[0])
        self.method, self.path = f[1], f[2]
        self.status = int(f[3])
        self.user = "" if f[4] == "-" else f[4]
        self.auth = f[5] != "-"

    def __repr__(self):
        a = " +Authorization" if self.auth else ""
        return f"<{self.port} {self.method} {self.path} {self.status} {self.user or '-'}{a}>"


class Transfer:
    """One URL of a curl run: status, client port, the X-Remote-User the response named
    ('' if none), whether curl opened a new connection for it."""

    def __init__(self, line):
        code, local_port, connects, user = (line.split("\t") + [""])[:4]
        self.status = int(code)
        self.local_port = int(local_port or 0)
        self.new_connection = int(connects or 0) > 0
        self.user = user.strip()

    def __repr__(self):
        return f"<{self.status} port={self.local_port} new={self.new_connection} user={self.user!r}>"


class Realm:
    def __init__(self):
        reason = missing()
        if reason:
            raise PeerError(reason)
        t0 = time.monotonic()
        # as root, in /tmp: `nobody` must reach the folder (TMPDIR may be under /root)
        self.dir = Path(tempfile.mkdtemp(prefix="shunt-realm-", dir="/tmp" if os.geteuid() == 0 else None))
        self.procs = []
        try:
            self._as = self._unprivileged()
            self._build()
        except BaseException:
            self.stop()
            raise
        self.setup_seconds = time.monotonic() - t0

    # ------------------------------------------------------------------ building

    def _unprivileged(self):
        """As root: (uid, gid) of nobody, and the folder handed to it; else None."""
        if os.geteuid() != 0:
            return None
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid

    def _chown_all(self):
        if not self._as:
            return
        for root, dirs, files in os.walk(self.dir):
            for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(n, *self._as)

    def _popen_args(self):
        if not self._as:
            return {}
        uid, gid = self._as
        return {"user": uid, "group": gid, "extra_groups": []}

    def _run(self, args, input=None):
        p = subprocess.run(args, input=input, capture_output=True, text=True, env=self.server_env,
                           timeout=WAIT, **self._popen_args())
        if p.returncode != 0:
            raise PeerError(f"{' '.join(args)} failed ({p.returncode}): {p.stdout}{p.stderr}")
        return p.stdout

    def _build(self):
        d = self.dir
        for sub in ("kdc", "httpd", "www/every", "www/bound", "rcache"):
            (d / sub).mkdir(parents=True)
        for sub in ("every", "bound"):
            (d / "www" / sub / "index.txt").write_text(f"{sub}\n")
        (d / "kdc" / "kadm5.acl").write_text("")
        self.ccache = d / "ccache"
        self.client_env = {k: v for k, v in os.environ.items()
                           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        self.client_env.update(KRB5_CONFIG=str(d / "krb5.conf"), KRB5CCNAME=f"FILE:{self.ccache}")
        self.server_env = dict(self.client_env, KRB5_KDC_PROFILE=str(d / "kdc.conf"),
                               KRB5RCACHEDIR=str(d / "rcache"), KRB5CCNAME=f"FILE:{d}/kdc/none")
        self._chown_all()
        for _ in range(5):  # a free port can be taken in between: retry with another
            self.kdc_port = free_port()
            (d / "krb5.conf").write_text(KRB5_CONF.format(realm=REALM, kdc_port=self.kdc_port))
            (d / "kdc.conf").write_text(KDC_CONF.format(realm=REALM, kdc_port=self.kdc_port, d=d))
            if not (d / "kdc" / "principal").exists():
                self._make_database()
            self.kdc = self._start("krb5kdc", [_which("krb5kdc"), "-n", "-P", str(d / "kdc" / "kdc.pid")],
                                   self.kdc_port)
            if self.kdc:
                break
        else:
            raise PeerError(f"krb5kdc did not start: {self._tail(d / 'kdc' / 'kdc.log')}")
        for _ in range(5):
            self.port = free_port()
            listen = f"Listen 127.0.0.1:{self.port}"
            if _free_on_v6(self.port):  # if localhost also names ::1, shunt may try it first
                listen += f"\nListen [::1]:{self.port}"
            user = ""
            if not self._as:  # not root: Apache keeps the test's user; say which
                user = (f"User {pwd.getpwuid(os.getuid()).pw_name}\n"
                        f"Group {grp.getgrgid(os.getgid()).gr_name}")
            (d / "httpd" / "httpd.conf").write_text(
                HTTPD_CONF.format(d=d, m=MODULES, listen=listen, user=user))
            self._chown_all()
            self.httpd = self._start("apache2", [_which("apache2"), "-f", str(d / "httpd" / "httpd.conf"),
                                                 "-DFOREGROUND"], self.port)
            if self.httpd:
                break
        else:
            raise PeerError(f"apache2 did not start: {self._tail(d / 'httpd' / 'error.log')}")
        self.origin = f"http://localhost:{self.port}"

    def _make_database(self):
        d = self.dir
        self._run([_which("kdb5_util"), "create", "-s", "-r", REALM, "-P", "master-pw-1"])
        kadmin = _which("kadmin.local")
        self._run([kadmin, "-r", REALM, "-q", f"addprinc -pw {ALICE_PASSWORD} alice"])
        self._run([kadmin, "-r", REALM, "-q", "addprinc -randkey HTTP/localhost"])
        self._run([kadmin, "-r", REALM, "-q", f"ktadd -k {d}/http.keytab HTTP/localhost"])

    def _start(self, name, args, port):
        """Starts a server and waits until it accepts on port; None if it exited first."""
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=self.server_env, **self._popen_args())
        self.procs.append(p)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if p.poll() is not None:
                self.procs.remove(p)
                return None
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return p
            except OSError:
                time.sleep(0.02)
        raise PeerError(f"{name} does not accept on 127.0.0.1:{port} after {WAIT}s")

    @staticmethod
    def _tail(path, n=3000):
        try:
            return Path(path).read_text(errors="replace")[-n:]
        except OSError as e:
            return str(e)

    # ------------------------------------------------------------------ using

    def kinit(self):
        """alice's ticket into the realm's credential cache."""
        p = subprocess.run([_which("kinit"), "alice"], input=ALICE_PASSWORD + "\n", capture_output=True,
                           text=True, env=self.client_env, timeout=WAIT)
        if p.returncode != 0:
            raise PeerError(f"kinit alice failed: {p.stdout}{p.stderr}\nkdc log: "
                            f"{self._tail(self.dir / 'kdc' / 'kdc.log')}")

    def kdestroy(self):
        subprocess.run([_which("kdestroy")] if shutil.which("kdestroy") else ["true"],
                       env=self.client_env, capture_output=True, timeout=WAIT)

    def curl(self, base, *paths, proxy=None, negotiate=True, extra=(), timeout=WAIT):
        """Runs one curl for base+path of every path (one connection, reused when it can be)
        and returns a Transfer per path. negotiate: --anyauth -u : (the ticket in the cache);
        proxy: a forward proxy URL; extra: more curl options. Names resolve to 127.0.0.1 only (--resolve)."""
        host_port = base.split("//", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        args = ["curl", "-sS", "--noproxy", "", "--resolve", f"{host}:{port}:127.0.0.1",
                "--max-time", str(timeout)]
        if proxy:
            args += ["-x", proxy]
        if negotiate:
            args += ["--anyauth", "-u", ":"]
        args += list(extra)
        args += ["-w", "%{http_code}\t%{local_port}\t%{num_connects}\t%header{x-remote-user}\n"]
        for p in paths:
            args += [base + p, "-o", "/dev/null"]
        r = subprocess.run(args, capture_output=True, text=True, env=self.client_env, timeout=timeout + 5)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr}")
        out = [Transfer(l) for l in r.stdout.splitlines() if l.strip()]
        assert len(out) == len(paths), f"curl printed {r.stdout!r} for {len(paths)} URLs"
        return out

    def access_log(self):
        """Every request Apache logged so far, in order."""
        try:
            text = (self.dir / "httpd" / "access.log").read_text()
        except FileNotFoundError:
            return []
        return [AccessLine(l) for l in text.splitlines() if l.strip()]

    def wait_log(self, count, since=0):
        """The log lines after the first <since>, once there are <count> of them (Apache
        writes a line just after the response)."""
        peers.wait_for(lambda: len(self.access_log()) >= since + count,
                       what=f"{count} requests in Apache's access log")
        return self.access_log()[since:]

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # by pid; Apache's master ends its children
            try:
                p.wait(WAIT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(WAIT)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_on_v6(port):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", port))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def realm():
    """The realm, Apache and alice's ticket, built once per module; skips (only) when the
    packages are absent."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    r = Realm()
    try:
        r.kinit()
        yield r
    finally:
        r.stop()


def capture_negotiate(realm, path, reverse=False, shunt_bin=None):
    """A capture FILE (path) of a real Negotiate session through shunt: one client
    connection that authenticates at /bound/ (401, then 200 with Authorization) and reuses
    it twice, then at /every/ (401 and 200 each time) twice, then a second client without
    credentials refused at /bound/ (401). Starts its own shunt (forward, or reverse to the
    realm's Apache) and stops it so that the capture is complete. Returns the list of
    Transfer of the first client, then the second client's."""
    args = ["--no-admin", "--capture", str(path), "-v"]
    if reverse:
        args += ["--reverse", realm.origin]
    old = peers.SHUNT_BIN
    if shunt_bin:
        peers.SHUNT_BIN = shunt_bin
    try:
        px = peers.Shunt(args)
    finally:
        peers.SHUNT_BIN = old
    try:
        proxy = None if reverse else px.proxy_url
        base = f"http://localhost:{px.port}" if reverse else realm.origin
        first = realm.curl(base, "/bound/index.txt", "/bound/index.txt", "/bound/index.txt",
                           "/every/index.txt", "/every/index.txt", proxy=proxy)
        second = realm.curl(base, "/bound/index.txt", proxy=proxy, negotiate=False)
    finally:
        problems = px.stop()
    if problems:
        raise AssertionError("\n".join(problems))
    return first + second
