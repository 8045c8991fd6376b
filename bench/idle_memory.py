#!/usr/bin/python3
"""bench/idle_memory.py - memory per idle keep-alive client connection (with its upstream pair).

Starts an nginx origin and, one at a time, shunt (reverse mode) and haproxy (the harness's
config) on loopback; opens N client connections through each, sends one request on each so
that its upstream connection is open too, leaves them idle, and reports the RSS growth per
connection. Stops only the processes it started.
usage: bench/idle_memory.py [--conns N] [--repeat R] [--shunt build/shunt]
"""
import argparse, os, resource, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} did not open")


def measure(pid, port, n):
    socks = []
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    warm = socket.create_connection(("127.0.0.1", port))
    warm.sendall(req)
    warm.recv(4096)
    time.sleep(0.3)
    before = rss_kib(pid)
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        data = s.recv(4096)
        if not data.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"unexpected answer: {data[:80]!r}")
    time.sleep(0.5)
    after = rss_kib(pid)
    for s in socks + [warm]:
        s.close()
    return (after - before) * 1024 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shunt", default=os.path.join(ROOT, "build", "shunt"))
    a = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run = tempfile.mkdtemp(prefix="shunt-idle.")
    procs = []
    try:
        origin = free_port()
        conf = os.path.join(run, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1; daemon off; pid {run}/nginx.pid; error_log {run}/error.log;
worker_rlimit_nofile {hard};
events {{ worker_connections {a.conns * 2 + 100}; }}
http {{ access_log off; keepalive_timeout 600s; keepalive_requests 1000000;
  client_body_temp_path {run}; proxy_temp_path {run}; fastcgi_temp_path {run};
  uwsgi_temp_path {run}; scgi_temp_path {run};
  server {{ listen 127.0.0.1:{origin}; location / {{ return 200 "ok"; }} }} }}
""")
        procs.append(subprocess.Popen(["nginx", "-c", conf, "-p", run], stderr=subprocess.DEVNULL))
        wait_port(origin)
        peers = {}
        port = free_port()
        peers["shunt"] = ([a.shunt, "proxy", "--listen", f"127.0.0.1:{port}", "--reverse",
                           f"http://127.0.0.1:{origin}", "--workers", "1"], port)
        if shutil.which("haproxy"):
            hport = free_port()
            hcfg = os.path.join(run, "haproxy.cfg")
            with open(os.path.join(ROOT, "..", "shared", "bench", "conf", "haproxy.cfg")) as f:
                text = f.read()
            text = text.replace("@PORT@", str(hport)).replace("@ORIGIN_PORT@", str(origin))
            text = text.replace("maxconn 8000", f"maxconn {a.conns + 500}")
            text = text.replace("timeout client 30s", "timeout client 600s")
            text = text.replace("timeout http-keep-alive 30s", "timeout http-keep-alive 600s")
            text = text.replace("timeout server 30s", "timeout server 600s")
            with open(hcfg, "w") as f:
                f.write(text)
            peers["haproxy"] = (["haproxy", "-db", "-f", hcfg], hport)
        results = {}
        for name, (cmd, p) in peers.items():
            vals = []
            for _ in range(a.repeat):
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(proc)
                wait_port(p)
                vals.append(measure(proc.pid, p, a.conns))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                procs.remove(proc)
            results[name] = statistics.median(vals)
            print(f"{name:8s} {a.conns} idle client connections (+ upstream pairs): "
                  f"{results[name] / 1024:.1f} KiB per connection (median of {a.repeat}: "
                  + ", ".join(f"{v / 1024:.1f}" for v in vals) + ")")
        if "haproxy" in results and results["haproxy"] > 0:
            print(f"shunt/haproxy bytes per idle connection: {results['shunt'] / results['haproxy']:.2f}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
