"""test_ca.py - `shunt ca`: made on first use where XDG says, what it prints, exports that
openssl reads, a CA given with --ca-cert/--ca-key, and clear errors."""
import os
import re
import stat
import subprocess

import peers


def run(*args, env_extra=None, home=None):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.pop("XDG_DATA_HOME", None)
    if home is not None:
        env["HOME"] = str(home)
    env.update(env_extra or {})
    p = subprocess.run([peers.SHUNT_BIN, "ca", *[str(a) for a in args]], capture_output=True,
                       env=env, timeout=peers.WAIT * 3, stdin=subprocess.DEVNULL)
    err = p.stderr.decode(errors="replace")
    assert not peers.SANITIZER_RE.search(err), err
    return p.returncode, p.stdout, err


def openssl(*args, data=None):
    p = subprocess.run(["openssl", *[str(a) for a in args]], input=data, capture_output=True,
                       timeout=peers.WAIT)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode()


def fingerprint(path, form="PEM"):
    out = openssl("x509", "-inform", form, "-in", path, "-noout", "-fingerprint", "-sha256")
    return out.strip().split("=", 1)[1]


def test_made_on_first_use_in_xdg_data_home(tmp_path):
    xdg = tmp_path / "xdg"
    rc, out, err = run(env_extra={"XDG_DATA_HOME": str(xdg)}, home=tmp_path / "home")
    assert rc == 0, err
    ca = xdg / "shunt" / "ca.pem"
    key = xdg / "shunt" / "ca-key.pem"
    assert err == f"shunt ca: there was no CA yet: made one in {ca}\n"
    assert stat.S_IMODE(os.stat(ca).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(xdg / "shunt").st_mode) == 0o700
    assert not (tmp_path / "home").exists()  # XDG_DATA_HOME wins over HOME
    text = out.decode()
    lines = text.splitlines()
    assert lines[0] == f"shunt's CA:  {ca}"
    assert lines[1] == f"key:         {key} (EC P-256; keep it private)"
    assert re.fullmatch(r"subject:     CN=shunt CA \(.+\),O=shunt", lines[2])
    assert lines[3] == "SHA-256:     " + fingerprint(ca)
    assert re.fullmatch(r"valid:       \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", lines[4])
    # how to trust it, for each client, naming the file
    assert f"curl --cacert {ca} -x http://127.0.0.1:8888" in text
    assert f"sudo cp {ca} /usr/local/share/ca-certificates/shunt.crt" in text
    assert "update-ca-certificates" in text
    assert f"certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n shunt -i {ca}" in text
    assert "Firefox" in text and "Authorities > Import" in text
    # a CA: CA:TRUE (critical), keyCertSign and cRLSign, 10 years
    x = openssl("x509", "-in", ca, "-noout", "-text")
    assert re.search(r"Basic Constraints: critical\s+CA:TRUE", x)
    assert re.search(r"Key Usage: critical\s+Certificate Sign, CRL Sign", x)
    assert "Subject Key Identifier" in x
    assert "ASN1 OID: prime256v1" in x
    # the key is the certificate's
    assert openssl("pkey", "-in", key, "-pubout") == openssl("x509", "-in", ca, "-noout",
                                                             "-pubkey")

    # the second time: the same CA, nothing made, nothing said on stderr
    rc, out2, err2 = run(env_extra={"XDG_DATA_HOME": str(xdg)})
    assert (rc, err2) == (0, "")
    assert out2 == out


def test_default_folder_is_under_home(tmp_path):
    rc, out, err = run(home=tmp_path)
    assert rc == 0, err
    ca = tmp_path / ".local" / "share" / "shunt" / "ca.pem"
    assert ca.exists()
    assert out.decode().splitlines()[0] == f"shunt's CA:  {ca}"
    # a relative XDG_DATA_HOME is ignored (the XDG spec says so)
    rc, out, err = run(home=tmp_path, env_extra={"XDG_DATA_HOME": "relative"})
    assert (rc, err) == (0, "")
    assert out.decode().splitlines()[0] == f"shunt's CA:  {ca}"


def test_export_pem_and_der(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path)}
    ca = tmp_path / "shunt" / "ca.pem"
    rc, pem, err = run("--export", "pem", env_extra=env)
    assert rc == 0, err
    assert pem == ca.read_bytes()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert b"PRIVATE" not in pem
    rc, out, err = run("--export", "der", "-o", tmp_path / "ca.der", env_extra=env)
    assert (rc, out, err) == (0, b"", "")
    assert fingerprint(tmp_path / "ca.der", "DER") == fingerprint(ca)
    rc, out, err = run("--export", "pem", "--output", tmp_path / "ca2.pem", env_extra=env)
    assert rc == 0, err
    assert (tmp_path / "ca2.pem").read_bytes() == pem
    # DER to a pipe is fine (not a terminal)
    rc, der, err = run("--export", "der", env_extra=env)
    assert rc == 0
    assert der == (tmp_path / "ca.der").read_bytes()


def test_given_ca_with_rsa_key(tmp_path):
    cert, key = tmp_path / "my-ca.pem", tmp_path / "my-ca.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "30", "-subj", "/CN=My Test CA", "-addext",
            "basicConstraints=critical,CA:TRUE")
    rc, out, err = run("--ca-cert", cert, "--ca-key", key,
                       env_extra={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert (rc, err) == (0, ""), err
    lines = out.decode().splitlines()
    assert lines[0] == f"shunt's CA:  {cert} (given with --ca-cert)"
    assert lines[1] == f"key:         {key} (RSA 2048; keep it private)"
    assert lines[2] == "subject:     CN=My Test CA"
    assert lines[3] == "SHA-256:     " + fingerprint(cert)
    assert not (tmp_path / "xdg").exists()  # shunt's own CA is not made


def test_errors(tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
    cert, key = tmp_path / "ca.pem", tmp_path / "ca.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=Test CA", "-addext",
            "basicConstraints=critical,CA:TRUE")
    other = tmp_path / "other.key"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other)
    leaf = tmp_path / "leaf.pem"
    openssl("req", "-x509", "-key", other, "-out", leaf, "-days", "30", "-subj", "/CN=leaf",
            "-addext", "basicConstraints=critical,CA:FALSE")

    def fails(args, code, text):
        rc, out, err = run(*args, env_extra=env)
        assert (rc, out) == (code, b""), err
        assert text in err, err
        assert err.startswith("shunt ca: ")

    fails(["--ca-cert", cert, "--ca-key", other], 2,
          f"the key in {other} does not match the certificate in {cert}")
    fails(["--ca-cert", leaf, "--ca-key", other], 2, f"{leaf} is not a CA certificate")
    fails(["--ca-cert", tmp_path / "missing.pem", "--ca-key", key], 2,
          f"{tmp_path / 'missing.pem'}: No such file or directory")
    fails(["--ca-cert", key, "--ca-key", key], 2, f"{key}: not a PEM certificate")
    fails(["--ca-cert", cert, "--ca-key", cert], 2, f"{cert}: not a PEM private key")
    fails(["--ca-cert", cert], 2, "give both --ca-cert and --ca-key, or neither")
    fails(["--export", "txt"], 2, "--export takes pem or der")
    fails(["-o", tmp_path / "x"], 2, "-o only makes sense with --export pem|der")
    fails(["--bogus"], 2, "unknown option '--bogus'")
    fails(["--export"], 2, "--export needs a value")
    if os.geteuid() != 0:  # root reads anything: no unreadable file to test with
        key.chmod(0)
        fails(["--ca-cert", cert, "--ca-key", key], 2, f"{key}: Permission denied")
    # half a CA in the default folder is not silently replaced
    rc, _, _ = run(env_extra=env)
    assert rc == 0
    (tmp_path / "xdg" / "shunt" / "ca-key.pem").unlink()
    fails([], 1, "ca.pem exists but")
    assert not (tmp_path / "xdg" / "shunt" / "ca-key.pem").exists()
    assert not (tmp_path / "xdg" / "x").exists()
    # no folder can be made
    (tmp_path / "file").write_text("")
    rc, out, err = run(env_extra={"XDG_DATA_HOME": str(tmp_path / "file")})
    assert rc == 1
    assert f"cannot make {tmp_path / 'file' / 'shunt'}" in err


def test_help():
    rc, out, err = run("--help")
    assert (rc, err) == (0, "")
    text = out.decode()
    assert text.startswith("usage: shunt ca [--ca-cert FILE --ca-key FILE] [--export pem|der")
    assert "$XDG_DATA_HOME/shunt/" in text
    p = subprocess.run([peers.SHUNT_BIN, "--help"], capture_output=True, text=True)
    assert re.search(r"^  ca +shunt's CA", p.stdout, re.M)


# ----------------------------------------------------------------------------- the proxy's flags


def proxy_fails(args, text, tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"))
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    p = subprocess.run([peers.SHUNT_BIN, "proxy", "--listen", "127.0.0.1:0", "--no-admin",
                        *[str(a) for a in args]], capture_output=True, text=True, env=env,
                       timeout=peers.WAIT, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, p.stderr
    assert not peers.SANITIZER_RE.search(p.stderr), p.stderr
    assert text in p.stderr, p.stderr


def test_proxy_tls_flag_errors(tmp_path):
    proxy_fails(["--intercept", "*x.test"], "--intercept *x.test: a host name has letters",
                tmp_path)
    proxy_fails(["--intercept", "a.test,[::1"], "--intercept [::1: an IPv6 address needs its "
                "closing ]", tmp_path)
    proxy_fails(["--intercept", "a.test:0"], "expected a port from 1 to 65535", tmp_path)
    proxy_fails(["--intercept", "::1"], "an IPv6 address goes between [ ]", tmp_path)
    proxy_fails(["--intercept", "*.10.0.0.1"], "an IP address takes no wildcard", tmp_path)
    proxy_fails(["--ca-cert", "x.pem", "--ca-key", "x.key"], "only makes sense with --intercept",
                tmp_path)
    proxy_fails(["--intercept", "--ca-cert", "x.pem"], "give both --ca-cert and --ca-key",
                tmp_path)
    proxy_fails(["--intercept", "--ca-cert", tmp_path / "no.pem", "--ca-key", tmp_path / "no"],
                f"--ca-cert/--ca-key: {tmp_path / 'no.pem'}: No such file or directory",
                tmp_path)
    proxy_fails(["--insecure-upstream"], "only makes sense with --intercept or --reverse https://",
                tmp_path)
    proxy_fails(["--upstream-cacert", "/etc/hostname"], "only makes sense with --intercept",
                tmp_path)
    proxy_fails(["--intercept", "--upstream-cacert", "/etc/hostname"],
                "--upstream-cacert /etc/hostname: no PEM certificate could be read", tmp_path)
    proxy_fails(["--reverse", "https://"], "expected http://HOST:PORT or https://HOST[:PORT]",
                tmp_path)
    proxy_fails(["--reverse", "https://a.test:70000"], "expected http://HOST:PORT or https://",
                tmp_path)
    proxy_fails(["--intercept", "--reverse", "http://a.test:1"], "not --reverse", tmp_path)
    proxy_fails(["--tls-handshake-timeout", "0"], "expected seconds (> 0)", tmp_path)
    assert not (tmp_path / "xdg").exists()  # no CA made for a command line that fails first


def test_proxy_intercept_makes_the_ca_and_warns_when_insecure(shunt, tmp_path):
    px = shunt("--intercept", "a.test,*.b.test:8443", "--insecure-upstream", "--no-admin",
               env={"XDG_DATA_HOME": str(tmp_path)})
    ca = tmp_path / "shunt" / "ca.pem"
    assert ca.exists()
    peers.wait_for(lambda: "NOT verified" in px.stderr, what="the warning")
    assert f"there was no CA yet: made one in {ca}" in px.stderr
    assert ("--insecure-upstream: origins' certificates are NOT verified: anyone between shunt "
            "and them can read and change the traffic") in px.stderr
