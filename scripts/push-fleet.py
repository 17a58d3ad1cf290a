#!/usr/bin/env python3
"""Push at scale across a fleet: a redis-server, the mock upstream and three relays sharing it
(`quantdb serve --redis`, TTL 2 s on a running clock from a Monday 10:00), N subscribers
(default 1000) spread over the relays, each on the same 100 symbols. The mock's prices move W
times (default 3); for each move the script waits until every subscriber has the change of
every symbol, and prints how long that took after the move and after the upstream answered
the poll that saw it (p50, p99 and the last subscriber), and how many upstream requests the
fleet made; then how many it makes in 10 s of still prices. It fails when a subscriber misses
a change, or gets a symbol's events out of order.

usage: scripts/push-fleet.py [N] [W] [IDLE]
       IDLE: the still seconds, default 10; BIN_DIR: the binaries, default target/debug;
       raise `ulimit -n` above N first
"""
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ.get("BIN_DIR", "target/debug")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
WINDOWS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
IDLE = int(sys.argv[3]) if len(sys.argv) > 3 else 10
CLOCK = "2026-11-30T10:00:00+08:00"
# A quote event's id, symbol and price (the quote's JSON starts with them, the name between).
QUOTE = re.compile(rb'id: (\d+)-(\d+)\nevent: quote\ndata: \{"symbol":"(\d{6})",.*?"current_price":([-0-9.e]+)')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data)) as r:
        return json.loads(r.read())


procs = []
try:
    redis_port = free_port()
    procs.append(subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL))
    mock = subprocess.Popen([f"{BIN}/mock_upstream", "--port", "0", "--now", CLOCK], stdout=subprocess.PIPE, text=True)
    procs.append(mock)
    mock_url = mock.stdout.readline().split()[-1]
    time.sleep(0.3)
    env = dict(os.environ, QUANTDB_SINA_URL=mock_url, QUANTDB_TENCENT_URL=mock_url,
               QUANTDB_EASTMONEY_URL=mock_url, QUANTDB_CLOCK_START=CLOCK)
    relays = []
    for _ in range(3):
        cache = tempfile.mkdtemp(prefix="quantdb-fleet-")
        p = subprocess.Popen(
            [f"{BIN}/quantdb", "--cache-dir", cache, "--ttl-trading-secs", "2", "--ttl-closed-secs", "2",
             "serve", "--port", "0", "--max-streams", str(N), "--redis", f"redis://127.0.0.1:{redis_port}/0"],
            stdout=subprocess.PIPE, text=True, env=env)
        procs.append(p)
        relays.append(p.stdout.readline().split()[-1])
    keys = [k for k in (f"sh{600000 + i}" for i in range(130)) if int(k[2:]) % 97][:100]
    symbols = ",".join(keys)

    sel = selectors.DefaultSelector()
    subs = []
    for i in range(N):
        host, port = relays[i % 3].replace("http://", "").split(":")
        s = socket.create_connection((host, int(port)))
        s.sendall(f"GET /api/v1/stream?symbols={symbols} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        s.setblocking(False)
        sub = {"sock": s, "buf": b"", "last": {}, "order": {}, "events": 0}
        subs.append(sub)
        sel.register(s, selectors.EVENT_READ, sub)

    def pump(until, timeout, on_read=lambda sub: None):
        """Reads events until until() holds; False on timeout."""
        deadline = time.time() + timeout
        while not until():
            if time.time() > deadline:
                return False
            for key, _ in sel.select(timeout=0.5):
                sub = key.data
                chunk = sub["sock"].recv(1 << 16)
                if not chunk:
                    raise SystemExit("a relay closed a stream")
                sub["buf"] += chunk
                # The complete events of the buffer, read with one regular expression rather
                # than a JSON parse each: the reader must keep up with 100,000 events a move.
                end = sub["buf"].rfind(b"\n\n")
                if end >= 0:
                    done_part, sub["buf"] = sub["buf"][:end + 2], sub["buf"][end + 2:]
                    for epoch, seq, symbol, price in QUOTE.findall(done_part):
                        symbol, order = symbol.decode(), (int(epoch), int(seq))
                        # In order per symbol: a later event of a symbol has a later id (an
                        # id of another numbering, the relay's own, says nothing of order).
                        before = sub["order"].get(symbol)
                        if before and before[0] == order[0] and order[1] <= before[1]:
                            raise SystemExit(f"{symbol}: event {order} after {before}")
                        sub["order"][symbol] = order
                        sub["last"][symbol] = float(price)
                        sub["events"] += 1
                on_read(sub)
        return True

    start = time.time()
    assert pump(lambda: all(len(s["last"]) == 100 for s in subs), 120), "the first quotes"
    print(f"{N} subscribers over 3 relays on 100 symbols: every first quote in {time.time() - start:.2f} s")
    for window in range(1, WINDOWS + 1):
        before = http(f"{mock_url}/__mock/stats")["requests"]["total"]
        http(f"{mock_url}/__mock/config", {"tick": window})
        want = {k[2:]: http(f"{mock_url}/__mock/quote/{k}")["price"] for k in keys}
        start = time.time()
        done, answered = {}, []

        def on_read(sub):
            # The first new price anywhere: the poll that saw the move has been answered.
            if not answered and any(sub["last"].get(k) == p for k, p in want.items()):
                answered.append(http(f"{mock_url}/__mock/stats")["last_request_ms"] / 1000)
            if id(sub) not in done and sub["last"] == want:
                done[id(sub)] = time.time()

        ok = pump(lambda: len(done) == N, 120, on_read)
        took = time.time() - start
        time.sleep(2.5)  # one more window: nothing else should be asked
        after = http(f"{mock_url}/__mock/stats")["requests"]["total"]
        events = sum(s["events"] for s in subs)
        if not ok:
            raise SystemExit(f"move {window}: not every subscriber got every new price")
        late = sorted(t - answered[0] for t in done.values())
        print(f"move {window}: every subscriber has every new price {took:.2f} s after the move; "
              f"after the upstream's answer: p50 {late[len(late) // 2] * 1000:.0f} ms, "
              f"p99 {late[min(len(late) - 1, len(late) * 99 // 100)] * 1000:.0f} ms, "
              f"last {late[-1] * 1000:.0f} ms; upstream requests since the move: {after - before}; "
              f"events so far: {events}")
    before = http(f"{mock_url}/__mock/stats")["requests"]["total"]
    time.sleep(IDLE)
    idle = http(f"{mock_url}/__mock/stats")["requests"]["total"] - before
    print(f"{IDLE} s with the {N} streams open and the prices still: {idle} upstream requests "
          f"(a window is the 2 s TTL: {IDLE // 2} windows)")
finally:
    for p in reversed(procs):  # the relays first: they flush to Redis as they stop
        p.terminate()
        p.wait()
