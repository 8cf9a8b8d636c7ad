#!/usr/bin/env python3
"""Bounded load test of `specdec serve` over loopback (Python standard library only).

For each speculation method (--methods, default none,lookup,draft) it starts one server
(--parallel slots, the method as its default --spec) and runs, for each concurrency in
--clients (default 1,4,16), that many client threads for --duration seconds (default 30):
each thread sends streaming /v1/completions requests back to back (prompts from the
shared bench files, greedy, max_tokens --max-tokens, ignore_eos) and records the time to
first token, the total time and usage.completion_tokens. A request fails on any non-200
status, a malformed stream, a missing [DONE], or no answer within --request-timeout
(hung). Writes JSON (--out) and prints a markdown table: requests/s, tokens/s, TTFT
p50/p99, latency p50, failed, and the throughput with speculation over without.

    python3 bench/load_server.py [--bin bin/specdec] [--threads 2] [--parallel 8]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def load_prompts(paths, max_chars):
    out = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line)["prompt"][-max_chars:])
    return out


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def one_request(port, prompt, max_tokens, timeout):
    """One streaming completion; returns (ok, ttft_s, total_s, tokens, error)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                       "stream": True})
    t0 = time.time()
    ttft = None
    tokens = 0
    done = False
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            r.read()
            c.close()
            return False, None, time.time() - t0, 0, "status %d" % r.status
        buf = b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(4096)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if not ev.startswith(b"data: "):
                    continue
                payload = ev[6:]
                if payload == b"[DONE]":
                    done = True
                    continue
                o = json.loads(payload)
                if ttft is None and o["choices"] and o["choices"][0].get("text"):
                    ttft = time.time() - t0
                if "usage" in o:
                    tokens = o["usage"]["completion_tokens"]
        c.close()
    except Exception as e:  # noqa: BLE001 - every failure counts
        return False, None, time.time() - t0, 0, "%s: %s" % (type(e).__name__, e)
    if not done:
        return False, ttft, time.time() - t0, tokens, "no [DONE]"
    return True, ttft, time.time() - t0, tokens, None


def run_level(port, prompts, n_clients, duration, max_tokens, timeout):
    results = []
    lock = threading.Lock()
    stop_at = time.time() + duration

    def client(i):
        k = i
        while time.time() < stop_at:
            res = one_request(port, prompts[k % len(prompts)], max_tokens, timeout)
            k += n_clients
            with lock:
                results.append(res)

    t0 = time.time()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(duration + timeout + 30)
    hung = sum(1 for t in ts if t.is_alive())
    wall = time.time() - t0
    ok = [r for r in results if r[0]]
    failed = [r for r in results if not r[0]]
    toks = sum(r[3] for r in ok)
    ttfts = [r[1] for r in ok if r[1] is not None]
    lat = [r[2] for r in ok]
    return {
        "clients": n_clients, "wall_s": round(wall, 2), "requests": len(ok), "failed": len(failed),
        "hung_threads": hung, "errors": sorted(set(r[4] for r in failed))[:5],
        "requests_per_s": round(len(ok) / wall, 3), "tokens_per_s": round(toks / wall, 2),
        "ttft_p50_s": pct(ttfts, 50), "ttft_p99_s": pct(ttfts, 99), "latency_p50_s": pct(lat, 50),
        "latency_p99_s": pct(lat, 99),
    }


def start_server(args, method):
    tmp = tempfile.mkdtemp(prefix="sd_load_")
    pf = os.path.join(tmp, "port")
    log = open(os.path.join(tmp, "log"), "w")
    cmd = [args.bin, "serve", "--port", "0", "--port-file", pf, "--parallel", str(args.parallel), "-t",
           str(args.threads), "--queue", "256", "--spec", method]
    if method != "none" and args.draft_max:
        cmd += ["--draft-max", args.draft_max]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(1200):
        if os.path.exists(pf) and os.path.getsize(pf) > 0:
            with open(pf) as f:
                return p, int(f.read()), tmp
        if p.poll() is not None:
            break
        time.sleep(0.1)
    p.kill()
    raise SystemExit("server did not start (%s)" % " ".join(cmd))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="bin/specdec")
    ap.add_argument("--methods", default="none,lookup,draft")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--draft-max", default="4", help="--draft-max of the server for methods other than none")
    ap.add_argument("--request-timeout", type=float, default=300)
    ap.add_argument("--prompt-chars", type=int, default=600)
    ap.add_argument("--prompts", nargs="*", default=["../shared/bench/code-btrfs.jsonl",
                                                      "../shared/bench/docs-filesystems.jsonl"])
    ap.add_argument("--out", default="bench/server_load.json")
    args = ap.parse_args()
    prompts = load_prompts(args.prompts, args.prompt_chars)
    levels = [int(x) for x in args.clients.split(",")]
    rows = []
    for method in args.methods.split(","):
        p, port, tmp = start_server(args, method)
        try:
            for n in levels:
                r = run_level(port, prompts, n, args.duration, args.max_tokens, args.request_timeout)
                r["method"] = method
                rows.append(r)
                print("%-8s %3d clients: %6.2f req/s %7.1f tok/s ttft p50 %s p99 %s failed %d hung %d" % (
                    method, n, r["requests_per_s"], r["tokens_per_s"], r["ttft_p50_s"], r["ttft_p99_s"],
                    r["failed"], r["hung_threads"]), flush=True)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
            shutil.rmtree(tmp, ignore_errors=True)
    base = {r["clients"]: r["tokens_per_s"] for r in rows if r["method"] == "none"}
    for r in rows:
        b = base.get(r["clients"])
        r["speedup_vs_none"] = round(r["tokens_per_s"] / b, 3) if b else None
    meta = {"parallel": args.parallel, "threads": args.threads, "duration_s": args.duration,
            "max_tokens": args.max_tokens, "draft_max": args.draft_max, "nproc": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    print("\n| method | clients | req/s | tokens/s | vs none | TTFT p50 (s) | TTFT p99 (s) | latency p50 (s) | failed | hung |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f3 = lambda v: "-" if v is None else "%.3f" % v  # noqa: E731
        print("| %s | %d | %.2f | %.1f | %s | %s | %s | %s | %d | %d |" % (
            r["method"], r["clients"], r["requests_per_s"], r["tokens_per_s"],
            "-" if r["speedup_vs_none"] is None else "%.2fx" % r["speedup_vs_none"], f3(r["ttft_p50_s"]),
            f3(r["ttft_p99_s"]), f3(r["latency_p50_s"]), r["failed"], r["hung_threads"]))
    print("\nwrote %s (load average at the end: %.2f %.2f %.2f)" % ((args.out,) + os.getloadavg()))
    return 1 if any(r["failed"] or r["hung_threads"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
