#!/usr/bin/env python3
"""Warm relay throughput and latency, side by side with nginx serving the very same bytes.

Starts the mock upstream and a relay (`quantdb serve`) on a stopped clock (Monday 10:00, so
every quote stays fresh), asks once for one quote and for a 100-symbol batch to warm the
cache, saves the two answers' exact bytes as static files served by nginx, and then loads
each of the four URLs with wrk (keep-alive connections). With Redis (the default), it then
starts a redis-server and two relays sharing it, and loads the same batch through both at
once.

Prints requests a second and the p50/p99 latency of each, and the relay's share of nginx.

usage: scripts/relay-bench.py [SECONDS] [CONNECTIONS]   (default 10 s, 32 connections;
       BIN_DIR: the binaries, default target/release; NO_REDIS=1 skips the fleet run)
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ.get("BIN_DIR", "target/release")
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
CONNECTIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 32
NOW = "2026-11-30T10:00:00+08:00"
SYMBOLS = ",".join(f"sh{600000 + i}" for i in range(100))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url) as r:
        return r.read()


def wait_for(url):
    for _ in range(100):
        try:
            return get(url)
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def relay(mock_url, extra=()):
    env = dict(os.environ, QUANTDB_SINA_URL=mock_url, QUANTDB_TENCENT_URL=mock_url,
               QUANTDB_EASTMONEY_URL=mock_url, QUANTDB_NOW=NOW, RUST_LOG="warn")
    cache = tempfile.mkdtemp(prefix="quantdb-bench-")
    p = subprocess.Popen([f"{BIN}/quantdb", "--cache-dir", cache, "serve", "--port", "0", *extra],
                         stdout=subprocess.PIPE, text=True, env=env)
    procs.append(p)
    return p.stdout.readline().split()[-1]


def latency_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(*urls):
    """Loads the URLs at once (one wrk each, the connections split between them); returns
    the total requests a second and the first one's p50 and p99 in ms."""
    runs = [subprocess.Popen(["wrk", "-t1", f"-c{max(1, CONNECTIONS // len(urls))}", f"-d{SECONDS}s",
                              "--latency", url], stdout=subprocess.PIPE, text=True) for url in urls]
    rps, p50, p99 = 0.0, None, None
    for run in runs:
        out = run.communicate()[0]
        if run.returncode or "Non-2xx" in out or "Socket errors" in out:
            raise SystemExit(f"wrk failed or saw errors:\n{out}")
        rps += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        if p50 is None:
            p50 = latency_ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups())
            p99 = latency_ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
    return rps, p50, p99


procs = []
root = tempfile.mkdtemp(prefix="quantdb-bench-nginx-")
try:
    mock = subprocess.Popen([f"{BIN}/mock_upstream", "--port", "0", "--now", NOW],
                            stdout=subprocess.PIPE, text=True)
    procs.append(mock)
    mock_url = mock.stdout.readline().split()[-1]
    base = relay(mock_url)
    one_url, batch_url = f"{base}/api/v1/realtime/600000", f"{base}/api/v1/realtime?symbols={SYMBOLS}"
    wait_for(f"{base}/healthz")
    with open(f"{root}/one.json", "wb") as f:
        f.write(get(one_url))
    with open(f"{root}/batch.json", "wb") as f:
        f.write(get(batch_url))

    nginx_port = free_port()
    with open(f"{root}/nginx.conf", "w") as f:
        f.write(f"""daemon off; worker_processes auto; pid {root}/nginx.pid; error_log stderr warn;
events {{ worker_connections 1024; }}
http {{ access_log off; default_type application/json; keepalive_requests 1000000;
  client_body_temp_path {root}; proxy_temp_path {root}; fastcgi_temp_path {root};
  uwsgi_temp_path {root}; scgi_temp_path {root};
  server {{ listen 127.0.0.1:{nginx_port}; root {root}; }} }}
""")
    procs.append(subprocess.Popen(["nginx", "-c", f"{root}/nginx.conf", "-p", root]))
    nginx = f"http://127.0.0.1:{nginx_port}"
    wait_for(f"{nginx}/one.json")

    print(f"wrk, {CONNECTIONS} connections, {SECONDS} s each; relay {BIN}/quantdb; "
          f"answers of {os.path.getsize(root + '/one.json')} and {os.path.getsize(root + '/batch.json')} bytes")
    print(f"{'case':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    results = {}
    for name, url in [("nginx, one quote", f"{nginx}/one.json"), ("relay, one quote", one_url),
                      ("nginx, 100-symbol batch", f"{nginx}/batch.json"), ("relay, 100-symbol batch", batch_url)]:
        results[name] = wrk(url)
        print(f"{name:<34} {results[name][0]:>9.0f} {results[name][1]:>8.2f} {results[name][2]:>8.2f}")
    for what in ("one quote", "100-symbol batch"):
        print(f"relay / nginx, {what}: {results['relay, ' + what][0] / results['nginx, ' + what][0]:.2f}x")

    if not os.environ.get("NO_REDIS"):
        redis_port = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        time.sleep(0.3)
        fleet = [relay(mock_url, ["--redis", f"redis://127.0.0.1:{redis_port}/0"]) for _ in range(2)]
        for r in fleet:
            wait_for(f"{r}/api/v1/realtime?symbols={SYMBOLS}")
        rps, p50, p99 = wrk(*(f"{r}/api/v1/realtime?symbols={SYMBOLS}" for r in fleet))
        print(f"{'two relays on Redis, 100-symbol batch':<34} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}  (sum of both)")
finally:
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        p.wait()
    shutil.rmtree(root, ignore_errors=True)
