#!/usr/bin/env python3
"""`specdec serve` under hostile load, over loopback (Python standard library only).

Each case attacks a running server and then checks that it is still alive, that
its memory came back near where it started (VmRSS within 10% of the level after
a warm-up, plus a small allowance under the sanitizers, whose allocator keeps
freed memory in quarantine), that no slot leaked (/metrics: specdec_slots_busy
0) and that no connection is left open.

  idle:      500 connections that send half a request and then nothing, from 20
             loopback addresses (25 each, under the per-IP limit), all held
             open, while 5 normal requests must each complete within 5 s; on
             the server's DEFAULT options.
  per-ip:    100 half-sent connections from ONE address: at most
             --max-conn-per-ip (32) are kept, the rest are closed at once;
             others are still served.
  flood:     2000 connect-and-close from one address; others are served during
             and after it.
  slow-read: a client reading its stream one byte per second; 3 requests of
             others are served meanwhile; its slot is freed when it leaves.
  json:      a 2 MB body (413), JSON nested 200000 deep (400), a 2 MB header
             (431).
  (second server, --read-timeout 2 --write-timeout 4)
  408:       a body sent one byte every 0.3 s gets 408 after the read timeout.
  keepalive: a kept-alive connection idle after its response is closed on the
             read clock.
  no-read:   a client that stops reading a long stream (receive buffer 4 KiB)
             is dropped after the write timeout: its generation, paused while
             the client lags, is cancelled,
             its slot freed, and specdec_write_timeouts_total counts it.

Exit 0 on success, 1 on failure.
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_test as st  # noqa: E402  (Server, check, failures)

SAN = "-san" in st.BIN  # build-san/bin/specdec (make test-san)
check = st.check
PROMPT = "static int btrfs_"


def rss_kb(srv):
    with open("/proc/%d/status" % srv.p.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def body(n=16, stream=False):
    return {"prompt": PROMPT, "max_tokens": n, "temperature": 0, "stream": stream}


def raw_request(path, obj, extra=b""):
    data = json.dumps(obj).encode()
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (path.encode(), len(data), extra)) + data


def half_sent(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    return s


def normal_requests(srv, n, limit_s):
    """n concurrent normal completions; returns the list of (status, seconds)."""
    out = []
    lock = threading.Lock()

    def one():
        t0 = time.time()
        try:
            code, _, d = srv.json("POST", "/v1/completions", body(), key=None, timeout=limit_s + 30)
            ok = code == 200 and d["usage"]["completion_tokens"] > 0
        except (OSError, ValueError, KeyError, TypeError) as e:
            print("     normal request failed: %r" % (e,))
            ok = False
        with lock:
            out.append((200 if ok else 0, time.time() - t0))
    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def wait_metric(srv, name, pred, limit_s):
    t0 = time.time()
    v = srv.metric(name)
    while not pred(v) and time.time() - t0 < limit_s:
        time.sleep(0.1)
        v = srv.metric(name)
    return v


def settled(srv, base_rss, what):
    """The checks after every case: alive, slots free, connections closed, RSS back."""
    check(srv.p.poll() is None and srv.healthy(), "%s: the server is alive and healthy" % what)
    busy = wait_metric(srv, "specdec_slots_busy", lambda v: v == 0, 30)
    check(busy == 0, "%s: no slot busy afterwards (%s)" % (what, busy))
    # the /metrics request itself is one open connection
    conns = wait_metric(srv, "specdec_connections_open", lambda v: v is not None and v <= 1, 30)
    check(conns is not None and conns <= 1, "%s: every connection closed (%s open)" % (what, conns))
    allow = base_rss * 0.10 + (48 * 1024 if SAN else 0)
    rss = rss_kb(srv)
    t0 = time.time()
    while rss > base_rss + allow and time.time() - t0 < 10:
        time.sleep(0.2)
        rss = rss_kb(srv)
    check(rss <= base_rss + allow, "%s: RSS %.1f MB, at the start %.1f MB (allowed +%.1f MB)"
          % (what, rss / 1024, base_rss / 1024, allow / 1024))


def case_idle(srv, base):
    socks, refused = [], 0
    for i in range(500):
        try:
            socks.append(half_sent(srv.port, "127.0.0.%d" % (10 + i % 20)))
        except OSError:
            refused += 1
    n_open = wait_metric(srv, "specdec_connections_open", lambda v: v is not None and v >= 501, 10)
    check(refused == 0 and n_open is not None and n_open >= 501,
          "idle: 500 half-sent connections accepted and held open (%s open, %d refused)" % (n_open, refused))
    res = normal_requests(srv, 5, 5)
    times = sorted(t for _, t in res)
    check(all(c == 200 and t < 5 for c, t in res),
          "idle: 5 of 5 normal requests served within 5 s while 500 are idle (%s s)"
          % ", ".join("%.2f" % t for t in times))
    t0 = time.time()
    check(srv.healthy() and time.time() - t0 < 5, "idle: /health answered under the idle load")
    t0 = time.time()
    check(srv.metric("specdec_slots_total") is not None and time.time() - t0 < 5,
          "idle: /metrics answered under the idle load")
    still = 0
    for s in socks:  # none was closed early: each still waits for the rest of its request
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                pass
        except BlockingIOError:
            still += 1
        except OSError:
            pass
    check(still == 500, "idle: all 500 still open after the normal requests (%d)" % still)
    for s in socks:
        s.close()
    settled(srv, base, "idle")


def case_per_ip(srv, base):
    socks = [half_sent(srv.port, "127.0.0.99") for _ in range(100)]
    time.sleep(1.0)
    n_open = srv.metric("specdec_connections_open")
    kept = 0
    for s in socks:
        s.setblocking(False)
        try:
            s.recv(1, socket.MSG_PEEK)  # b"": closed by the server
        except BlockingIOError:
            kept += 1  # still open, waiting for the rest of its request
        except OSError:
            pass
    check(0 < kept <= 32 and n_open is not None and n_open <= 33,
          "per-ip: of 100 half-sent connections from one address %d kept, the rest closed at once"
          " (server: %s open; limit 32)" % (kept, n_open))
    res = normal_requests(srv, 2, 5)
    check(all(c == 200 and t < 5 for c, t in res), "per-ip: others still served within 5 s")
    for s in socks:
        s.close()
    settled(srv, base, "per-ip")


def case_flood(srv, base):
    n, errors = 2000, [0]
    lock = threading.Lock()

    def worker(k):
        for _ in range(n // 4):
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(5)
                s.bind(("127.0.0.77", 0))  # the attacker's address; others are served meanwhile
                s.connect(("127.0.0.1", srv.port))
                s.close()
            except OSError:
                with lock:
                    errors[0] += 1
    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    during = normal_requests(srv, 2, 5)
    for t in ts:
        t.join()
    check(errors[0] == 0, "flood: 2000 connect-and-close in %.1f s (%d failed to connect)"
          % (time.time() - t0, errors[0]))
    res = normal_requests(srv, 2, 5)
    check(all(c == 200 and t < 5 for c, t in during + res),
          "flood: normal requests from another address served during and after it")
    settled(srv, base, "flood")


def case_slow_reader(srv, base):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(raw_request("/v1/completions", dict(body(200, True), ignore_eos=True)))
    got = b""
    s.settimeout(30)
    for _ in range(3):
        got += s.recv(1)
        time.sleep(1.0)
    res = normal_requests(srv, 3, 5)
    check(got.startswith(b"HTT") and all(c == 200 and t < 5 for c, t in res),
          "slow-read: 3 normal requests served within 5 s while a client reads 1 byte/s (%s)"
          % ", ".join("%.2f" % t for _, t in res))
    s.close()
    settled(srv, base, "slow-read")


def case_json(srv, base):
    big = b'{"prompt": "' + b"a" * (2 << 20) + b'"}'
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.settimeout(30)
    try:  # the server answers from Content-Length and may close before reading the body
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
    except OSError:
        pass
    try:
        head = s.recv(64)
    except OSError:
        head = b""
    s.close()
    check(head.startswith(b"HTTP/1.1 413"), "json: a 2 MB body -> 413 (%r)" % head[:20])
    deep = b'{"prompt": "x", "a": ' + b"[" * 200000 + b"]" * 200000 + b"}"
    code, _, d = srv.json("POST", "/v1/completions", deep)
    check(code == 400 and "error" in d, "json: JSON nested 200000 deep -> 400 (%d)" % code)
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.settimeout(30)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (2 << 20) + b"\r\n\r\n")
    except OSError:
        pass  # the server may answer and close before reading it all
    try:
        head = s.recv(64)
    except OSError:
        head = b""
    s.close()
    check(head.startswith(b"HTTP/1.1 431"), "json: a 2 MB header -> 431 (%r)" % head[:20])
    settled(srv, base, "json")


def case_408(srv):
    s = socket.create_connection(("127.0.0.1", srv.port))
    req = raw_request("/v1/completions", body(4))
    head, data = req.split(b"\r\n\r\n", 1)
    s.sendall(head + b"\r\n\r\n")
    s.settimeout(0.3)
    t0, got = time.time(), b""
    for i in range(len(data)):
        try:
            s.sendall(data[i:i + 1])
        except OSError:
            break
        try:
            got += s.recv(4096)
            if got:
                break
        except socket.timeout:
            pass
        except OSError:
            break
        if time.time() - t0 > 8:
            break
    s.close()
    dt = time.time() - t0
    check(got.startswith(b"HTTP/1.1 408") and dt < 5,
          "408: a body trickled at 1 byte / 0.3 s answered %r after %.1f s (--read-timeout 2)" % (got[:12], dt))


def case_keepalive(srv):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(raw_request("/v1/completions", body(4)))
    s.settimeout(30)
    got = b""
    while b"}" not in got.split(b"\r\n\r\n", 1)[-1] or b"\r\n\r\n" not in got:
        k = s.recv(4096)
        if not k:
            break
        got += k
    t0 = time.time()
    try:
        rest = s.recv(4096)  # nothing more: the server closes the idle connection
    except OSError:
        rest = b"?"
    dt = time.time() - t0
    s.close()
    check(got.startswith(b"HTTP/1.1 200") and rest == b"" and 1.0 < dt < 3.5,
          "keepalive: an idle kept-alive connection is closed after %.1f s (--read-timeout 2,"
          " not --write-timeout 4)" % dt)


def case_no_read(srv):
    w0 = srv.metric("specdec_write_timeouts_total")
    c0 = srv.metric("specdec_requests_cancelled_total")
    g0 = srv.metric("specdec_generated_tokens_total")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(raw_request("/v1/completions", dict(body(1000, True), ignore_eos=True)))
    t0 = time.time()
    w1 = wait_metric(srv, "specdec_write_timeouts_total", lambda v: v is not None and v > w0, 60)
    dt = time.time() - t0
    busy = wait_metric(srv, "specdec_slots_busy", lambda v: v == 0, 10)
    gen = srv.metric("specdec_generated_tokens_total") - g0
    c1 = srv.metric("specdec_requests_cancelled_total")
    check(w1 == w0 + 1 and busy == 0,
          "no-read: a client that stops reading is dropped after %.1f s (--write-timeout 4), its slot freed"
          " (write timeouts %s -> %s)" % (dt, w0, w1))
    check(c1 == c0 + 1 and gen is not None and gen < 1000,
          "no-read: its generation was cancelled (%s of 1000 tokens made; the stream pauses while its"
          " client lags)" % gen)
    s.close()
    check(srv.healthy(), "no-read: healthy afterwards")


def main():
    srv = st.Server("-t", "1")  # the default options otherwise
    srv2 = None
    try:
        # warm-up: allocator arenas, every KV cell of both slots (pages are touched lazily)
        long = dict(body(900), ignore_eos=True)
        ts = [threading.Thread(target=srv.json, args=("POST", "/v1/completions", long)) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for _ in range(3):
            normal_requests(srv, 2, 60)
            st.stream(srv, "/v1/completions", body(16, True))[-1].close()
        time.sleep(0.5)
        base = rss_kb(srv)
        print("base RSS %.1f MB" % (base / 1024))
        case_idle(srv, base)
        case_per_ip(srv, base)
        case_flood(srv, base)
        case_slow_reader(srv, base)
        case_json(srv, base)
        srv2 = st.Server("-t", "1", "--read-timeout", "2", "--write-timeout", "4")
        ts = [threading.Thread(target=srv2.json, args=("POST", "/v1/completions", long)) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        time.sleep(0.5)
        base2 = rss_kb(srv2)
        case_408(srv2)
        settled(srv2, base2, "408")
        case_keepalive(srv2)
        settled(srv2, base2, "keepalive")
        case_no_read(srv2)
        settled(srv2, base2, "no-read")
        check(srv.stop() == 0, "SIGTERM: exit 0 (no leak reported under the sanitizers)")
        check(srv2.stop() == 0, "second server: SIGTERM exit 0")
    finally:
        srv.stop()
        if srv2:
            srv2.stop()
    if st.failures:
        for sv in (srv, srv2):
            if sv:
                sv.log.seek(0)
                print("server log:\n" + sv.log.read()[-3000:])
        print("%d FAILED: %s" % (len(st.failures), st.failures))
        return 1
    print("all hostile-load tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
