#!/usr/bin/env python3
"""The easyquotation side of scripts/compare.sh: times easyquotation's Sina client against
quantdb's mock upstream and prints one JSON line per case with the median over --runs.

    python scripts/compare_easyquotation.py --url http://127.0.0.1:PORT --keys KEYS --runs 7

KEYS is the mock market's keys, one a line (`compare --print-keys`). It installs nothing:
compare.sh runs it in a virtual environment with easyquotation installed. The client's
request URL goes to the mock by overriding `stock_api` in a subclass (no file is patched).

Cases as in examples/compare.rs: 4, 100 and all keys (evenly spaced over the market). `cold`
is a new client, `warm` the same client again (easyquotation has no cache: a second fetch),
`restart` for the whole market a new client again (nothing survives a restart).
"""
import argparse
import json
import statistics
import sys
import time
import urllib.request

from easyquotation import sina


class MockSina(sina.Sina):
    """easyquotation's Sina client, asking `base` instead of hq.sinajs.cn."""

    def __init__(self, base):
        self.base = base
        super().__init__()

    @property
    def stock_api(self):
        # Same shape as the original: http://hq.sinajs.cn/rn=<ms>&list=
        return f"{self.base}/rn={int(time.time() * 1000)}&list="


def mock_call(url, method="GET"):
    with urllib.request.urlopen(urllib.request.Request(url, method=method)) as resp:
        return json.load(resp)


def sample(keys, n):
    """n keys evenly spaced over the market (the Rust driver picks the same ones)."""
    return [keys[i * len(keys) // n] for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    base = args.url.rstrip("/")
    with open(args.keys) as f:
        market = [line.strip() for line in f if line.strip()]

    def timed(client, codes, case):
        mock_call(base + "/__mock/reset", "POST")
        start = time.perf_counter()
        quotes = client.real(codes, prefix=True)
        case["ms"].append((time.perf_counter() - start) * 1000)
        stats = mock_call(base + "/__mock/stats")
        case["requests"] = max(case["requests"], stats["requests"]["total"])
        case["quotes"] = len(quotes)
        if len(quotes) != len(codes):
            print(f"warning: easyquotation returned {len(quotes)} quotes for "
                  f"{len(codes)} symbols", file=sys.stderr)

    def new_case():
        return {"ms": [], "build_ms": [], "requests": 0, "quotes": 0}

    def new_client(case):
        start = time.perf_counter()
        client = MockSina(base)
        case["build_ms"].append((time.perf_counter() - start) * 1000)
        return client

    for label, n in (("4", 4), ("100", 100), ("market", len(market))):
        codes = sample(market, n)
        cases = {"cold": new_case(), "warm": new_case()}
        if label == "market":
            cases["restart"] = new_case()
        for _ in range(max(args.runs, 1)):
            client = new_client(cases["cold"])
            timed(client, codes, cases["cold"])
            timed(client, codes, cases["warm"])
            if "restart" in cases:
                timed(new_client(cases["restart"]), codes, cases["restart"])
        for kind, case in cases.items():
            line = {
                "tool": "easyquotation",
                "case": f"{label} {kind}",
                "symbols": n,
                "runs": len(case["ms"]),
                "median_ms": statistics.median(case["ms"]),
                "min_ms": min(case["ms"]),
                "requests": case["requests"],
                "quotes": case["quotes"],
            }
            if case["build_ms"]:
                line["build_ms"] = statistics.median(case["build_ms"])
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
