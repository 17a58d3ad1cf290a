#!/usr/bin/env python3
"""Memory per idle push stream of a relay: starts the mock upstream and `quantdb serve`
(from BIN_DIR, default target/debug; build them with `cargo build -p quantdb-cli -p
mock-upstream`), opens N streams (default 1000) that read their first event and then stay
idle, and prints how much the relay's resident memory grew per stream.

usage: scripts/idle-streams.py [N]    (raise `ulimit -n` above N first)
"""
import os
import re
import socket
import subprocess
import sys
import time

BIN = os.environ.get("BIN_DIR", "target/debug")
mock = subprocess.Popen([f"{BIN}/mock_upstream","--port","0","--now","2026-11-30T10:00:00+08:00"], stdout=subprocess.PIPE, text=True)
line = mock.stdout.readline(); murl = line.split()[-1]
env = dict(os.environ, QUANTDB_SINA_URL=murl, QUANTDB_TENCENT_URL=murl, QUANTDB_EASTMONEY_URL=murl, QUANTDB_NOW="2026-11-30T10:00:00+08:00")
relay = subprocess.Popen([f"{BIN}/quantdb","--memory-only","serve","--port","0","--max-streams","5000"], stdout=subprocess.PIPE, text=True, env=env)
rurl = relay.stdout.readline().split()[-1]; host, port = rurl.replace("http://","").split(":")
def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{relay.pid}/status").read()).group(1))
def open_stream():
    s = socket.create_connection((host, int(port)))
    s.sendall(f"GET /api/v1/stream?symbols=600000 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    data = b""
    while b"event: quote" not in data:
        data += s.recv(4096)
    return s
warm = [open_stream() for _ in range(20)]
time.sleep(0.5); before = rss()
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
socks = [open_stream() for _ in range(N)]
time.sleep(1.0); after = rss()
print(f"relay RSS {before} kB with 20 streams, {after} kB with {N+20}: {(after-before)*1024/N:.0f} bytes per idle stream")
for s in socks + warm: s.close()
relay.terminate(); mock.terminate()
