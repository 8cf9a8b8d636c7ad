#!/usr/bin/env python3
"""End-to-end tests of `specdec serve` over loopback (Python standard library only).

Starts the real server binary ($BIN, default bin/specdec) on a free port and checks:
completions and chat completions, streaming and not, greedy output identical to
`specdec generate`, speculation through the server, continuous batching (concurrent
requests give the same greedy text), keep-alive right after a stream, every bad input
of issue 7 (status code + JSON error body, server healthy afterwards), 413, 401, 404,
405, 503 with Retry-After, stalled clients timed out, client disconnects cancelling
their generation, /metrics, and the n-gram cache saved on SIGTERM and loaded at start.
Exit 0 on success, 1 on failure.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("BIN", "bin/specdec")
QUICK = os.environ.get("SD_TEST_QUICK") == "1"
KEY = "sekrit-key-123"
failures = []
tmpdirs = []  # the servers' folders (port file, log): removed when every check passed


def check(cond, what):
    if cond:
        print("ok  ", what)
    else:
        print("FAIL", what)
        failures.append(what)


class Server:
    def __init__(self, *args):
        self.tmp = tempfile.mkdtemp(prefix="sd_srv_")
        tmpdirs.append(self.tmp)
        self.port_file = os.path.join(self.tmp, "port")
        self.log = open(os.path.join(self.tmp, "log"), "w+")
        self.p = subprocess.Popen([BIN, "serve", "--port", "0", "--port-file", self.port_file] + list(args),
                                  stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        self.port = None
        while time.time() < deadline and self.p.poll() is None:
            try:
                with open(self.port_file) as f:
                    self.port = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        if self.port is None:
            self.log.seek(0)
            raise SystemExit("server did not start:\n" + self.log.read())

    def conn(self, timeout=300):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, key=KEY, timeout=300):
        h = {"Content-Type": "application/json"}
        if key:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c = self.conn(timeout)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def json(self, method, path, body=None, **kw):
        st, h, data = self.request(method, path, body, **kw)
        try:
            return st, h, json.loads(data)
        except ValueError:
            return st, h, data

    def metric(self, name):
        st, _, data = self.request("GET", "/metrics")
        for line in data.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def healthy(self):
        try:
            st, _, d = self.json("GET", "/health", timeout=30)
            return st == 200 and d.get("status") == "ok"
        except OSError:
            return False

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def stream(srv, path, body, conn=None):
    """POSTs a streaming request; returns (status, events, done_seen, conn)."""
    c = conn or srv.conn()
    c.request("POST", path, body=json.dumps(body),
              headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
    r = c.getresponse()
    raw = r.read().decode()
    events, done = [], False
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        payload = block[6:]
        if payload == "[DONE]":
            done = True
        else:
            events.append(json.loads(payload))
    return r.status, r.getheader("Content-Type"), events, done, c


def generate_ref(prompt, n):
    out = subprocess.run([BIN, "generate", "-p", prompt, "-n", str(n), "--temp", "0", "--json", "-t", "1"],
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)


def main():
    n_tok = 12 if QUICK else 24
    prompt = "static int btrfs_"
    srv = Server("--parallel", "2", "-t", "1", "--queue", "1", "--timeout", "2", "--max-body", "65536",
                 "--api-key", KEY, "--chat-template", "chatml", "--spec", "none",
                 "--ngram-cache", os.path.join(tempfile.gettempdir(), "sd_srv_ngc_%d.bin" % os.getpid()))
    ngc_path = os.path.join(tempfile.gettempdir(), "sd_srv_ngc_%d.bin" % os.getpid())
    try:
        # --- the basics
        st, _, d = srv.json("GET", "/health", key=None)
        check(st == 200 and d == {"status": "ok"}, "GET /health without a key")
        st, _, d = srv.json("GET", "/v1/models")
        check(st == 200 and d["object"] == "list" and d["data"][0]["object"] == "model", "GET /v1/models")
        st, _, d = srv.json("GET", "/v1/models", key=None)
        check(st == 401 and "error" in d, "401 without the API key")
        st, _, d = srv.json("GET", "/v1/models", key="sekrit-key-12X")
        check(st == 401, "401 with a wrong API key of the same length")

        # --- greedy output identical to `specdec generate`
        ref = generate_ref(prompt, n_tok)
        body = {"prompt": prompt, "max_tokens": n_tok, "temperature": 0}
        st, _, d = srv.json("POST", "/v1/completions", body)
        check(st == 200 and d["object"] == "text_completion", "POST /v1/completions")
        text = d["choices"][0]["text"] if st == 200 else None
        check(text == ref["text"], "greedy completion identical to specdec generate (%r)" % (text,))
        u = d.get("usage", {})
        check(u.get("completion_tokens") == len(ref["ids"]) and u.get("prompt_tokens") == len(ref["prompt_ids"]),
              "usage token counts")
        check("drafted_tokens" in u and "accepted_tokens" in u, "usage has drafted / accepted tokens")
        check(d["choices"][0]["finish_reason"] == "length", "finish_reason length")

        # --- speculation per request, same greedy text
        ngc_first = None
        for method in (["lookup", "draft", "ngram-cache"] if QUICK else
                       ["lookup", "draft", "ngram-cache", "tree-draft", "self", "eagle"]):
            st, _, d = srv.json("POST", "/v1/completions", dict(body, spec=method, draft_max=4))
            ok = st == 200 and d["choices"][0]["text"] == ref["text"] and d["usage"]["spec"] == method
            check(ok, "spec=%s: greedy text identical, usage.spec set" % method)
            if method == "ngram-cache" and st == 200:
                ngc_first = d["usage"]["accepted_tokens"]  # learned from an empty shared cache
        st, _, d = srv.json("POST", "/v1/completions", dict(body, spec="draft", draft_max=4))
        check(st == 200 and d["usage"]["drafted_tokens"] > 0, "spec=draft drafts tokens (usage.drafted_tokens > 0)")
        # the shared n-gram cache learns across requests (its dynamic part wants >= 2 sightings)
        acc = []
        for _ in range(2):
            st, _, d = srv.json("POST", "/v1/completions", dict(body, spec="ngram-cache", draft_max=4))
            acc.append(d["usage"]["accepted_tokens"] if st == 200 else -1)
        check(acc[-1] > ngc_first, "online n-gram cache: the third request accepts more than the first (%s, %s)"
              % (ngc_first, acc))

        # --- streaming: same text, [DONE], then keep-alive on the same connection
        st, ctype, ev, done, c = stream(srv, "/v1/completions", dict(body, stream=True))
        stext = "".join(e["choices"][0]["text"] for e in ev)
        check(st == 200 and ctype.startswith("text/event-stream"), "stream: 200 text/event-stream")
        check(done and stext == ref["text"], "stream: concatenated text identical, ends with [DONE]")
        check(ev and ev[-1]["choices"][0]["finish_reason"] == "length" and "usage" in ev[-1],
              "stream: last event has finish_reason and usage")
        c.request("GET", "/v1/models", headers={"Authorization": "Bearer " + KEY})
        r = c.getresponse()
        r.read()
        check(r.status == 200, "keep-alive: a request on the same connection right after a stream")
        st, _, ev2, done, c = stream(srv, "/v1/completions", dict(body, stream=True, spec="lookup"), conn=c)
        check(st == 200 and done and "".join(e["choices"][0]["text"] for e in ev2) == ref["text"],
              "keep-alive: a second stream on the same connection")
        c.close()

        # --- stop strings: the text ends where one starts, also when streamed. The stop string is
        # two characters of the greedy text, at its first newline after 3 characters (or, in a
        # text without one, at its middle); the text is cut where its first occurrence starts.
        nl = ref["text"].find("\n", 3)
        stop = ref["text"][nl:nl + 2] if nl > 0 else ref["text"][len(ref["text"]) // 2:][:2]
        stop_at = ref["text"].find(stop)
        check(len(stop) == 2, "stop string %r taken from the greedy text %r" % (stop, ref["text"]))
        st, _, d = srv.json("POST", "/v1/completions", dict(body, stop=[stop, "never-seen"]))
        check(st == 200 and d["choices"][0]["text"] == ref["text"][:stop_at] and
              d["choices"][0]["finish_reason"] == "stop", "stop string %r: text cut before it, finish_reason stop"
              % stop)
        st, _, ev, done, c = stream(srv, "/v1/completions", dict(body, stop=stop, stream=True))
        c.close()
        check(st == 200 and done and "".join(e["choices"][0]["text"] for e in ev) == ref["text"][:stop_at],
              "stop string %r, streamed: the same text (the stop string never sent)" % stop)

        # --- chat
        chat = {"messages": [{"role": "system", "content": "You write C."},
                             {"role": "user", "content": "static int"}], "max_tokens": 8, "temperature": 0}
        st, _, d = srv.json("POST", "/v1/chat/completions", chat)
        check(st == 200 and d["object"] == "chat.completion" and d["choices"][0]["message"]["role"] == "assistant"
              and isinstance(d["choices"][0]["message"]["content"], str), "POST /v1/chat/completions")
        st, _, ev, done, c = stream(srv, "/v1/chat/completions", dict(chat, stream=True))
        c.close()
        ctext = "".join(e["choices"][0]["delta"].get("content", "") for e in ev)
        check(st == 200 and done and ev[0]["object"] == "chat.completion.chunk" and
              ctext == d["choices"][0]["message"]["content"], "chat stream: same text as non-streaming")

        # --- continuous batching: concurrent requests, same greedy text each; then a mix
        # that cannot share forwards (hidden states for eagle, layer_begin > 0 for self)
        for round_, mix in enumerate([["none", "lookup", "draft"]] + ([] if QUICK else [["eagle", "self", "draft"]])):
            res = [None] * 3
            def one(i):
                res[i] = srv.json("POST", "/v1/completions", dict(body, spec=mix[i], draft_max=4))
            f0 = srv.metric("specdec_batched_forwards_total")
            s0 = srv.metric("specdec_batched_seqs_total")
            ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            ok = all(r is not None and r[0] == 200 for r in res)
            got = [r[2]["choices"][0]["text"] for r in res if r and r[0] == 200]
            check(ok and all(t == ref["text"] for t in got),
                  "3 concurrent requests (2 slots, %s): each greedy text identical" % ",".join(mix))
            f1 = srv.metric("specdec_batched_forwards_total")
            s1 = srv.metric("specdec_batched_seqs_total")
            if round_ == 0:
                check(s1 - s0 > f1 - f0, "batching: forwards carried more than one sequence (%d seqs in %d forwards)"
                      % (s1 - s0, f1 - f0))

        # --- bad inputs: 4xx + JSON error body, server healthy after each
        long_prompt = "int x; " * 3000
        bad = [
            ("malformed JSON", b'{"prompt": "x", ', 400),
            ("body not an object", b'[1, 2]', 400),
            ("prompt wrong type", {"prompt": 5}, 400),
            ("missing prompt", {"max_tokens": 4}, 400),
            ("max_tokens wrong type", {"prompt": "a", "max_tokens": "4"}, 400),
            ("max_tokens negative", {"prompt": "a", "max_tokens": -1}, 400),
            ("max_tokens huge", {"prompt": "a", "max_tokens": 10 ** 12}, 400),
            ("max_tokens over the context", {"prompt": "a", "max_tokens": 100000}, 400),
            ("temperature NaN", b'{"prompt": "a", "temperature": NaN}', 400),
            ("temperature negative", {"prompt": "a", "temperature": -0.5}, 400),
            ("temperature wrong type", {"prompt": "a", "temperature": "hot"}, 400),
            ("top_p above 1", {"prompt": "a", "top_p": 1.5}, 400),
            ("top_k negative", {"prompt": "a", "top_k": -3}, 400),
            ("min_p above 1", {"prompt": "a", "min_p": 2}, 400),
            ("seed wrong type", {"prompt": "a", "seed": "x"}, 400),
            ("stream wrong type", {"prompt": "a", "stream": "yes"}, 400),
            ("ignore_eos wrong type", {"prompt": "a", "ignore_eos": 1}, 400),
            ("unknown spec", {"prompt": "a", "spec": "bogus"}, 400),
            ("draft_max out of range", {"prompt": "a", "draft_max": 999}, 400),
            ("prompt longer than the context", {"prompt": long_prompt, "max_tokens": 1}, 400),
            ("invalid UTF-8", b'{"prompt": "\xff\xfe bad"}', 400),
            ("lone surrogate escape", b'{"prompt": "\\ud800"}', 400),
            ("NUL in prompt", b'{"prompt": "a\\u0000b"}', 400),
            ("messages wrong type", {"messages": "hi"}, 400, "/v1/chat/completions"),
            ("message without content", {"messages": [{"role": "user"}]}, 400, "/v1/chat/completions"),
            ("bad role", {"messages": [{"role": "wizard", "content": "x"}]}, 400, "/v1/chat/completions"),
            ("n > 1", {"prompt": "a", "n": 2}, 400),
            ("stop wrong type", {"prompt": "a", "stop": 5}, 400),
            ("too many stop strings", {"prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, 400),
            ("empty stop string", {"prompt": "a", "stop": [""]}, 400),
        ]
        for item in bad:
            name, b, want = item[:3]
            path = item[3] if len(item) > 3 else "/v1/completions"
            st, _, d = srv.json("POST", path, b)
            check(st == want and isinstance(d, dict) and isinstance(d.get("error", {}).get("message"), str),
                  "bad input: %s -> %d (got %d)" % (name, want, st))
            if not srv.healthy():
                check(False, "healthy after %s" % name)
        st, _, d = srv.json("POST", "/v1/completions", {"prompt": "x" * 70000})
        check(st == 413 and "error" in d, "oversized body -> 413 (got %d)" % st)
        # a chunked upload without Content-Length past the limit
        c = srv.conn()
        c.putrequest("POST", "/v1/completions")
        c.putheader("Authorization", "Bearer " + KEY)
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        chunk = b"x" * 32768
        for _ in range(3):
            c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        r.read()
        c.close()
        check(r.status == 413, "oversized chunked body -> 413 (got %d)" % r.status)
        st, _, d = srv.json("GET", "/v1/nothing")
        check(st == 404 and "error" in d, "unknown endpoint -> 404")
        st, _, d = srv.json("GET", "/v1/completions")
        check(st == 405 and "error" in d, "GET on a POST endpoint -> 405")
        check(srv.healthy(), "healthy after the bad inputs")

        # --- stalled clients: a half-sent request is closed after --timeout (2 s)
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
        check(srv.healthy(), "healthy while a client stalls")
        s.settimeout(15)
        t0 = time.time()
        try:
            got = s.recv(4096)
        except OSError:
            got = b"?"
        closed_after = time.time() - t0
        s.close()
        check(got == b"" and closed_after < 14, "stalled client closed by the server after %.1f s" % closed_after)

        # --- a slow client trickling its body byte by byte is dropped after --timeout too
        s = socket.create_connection(("127.0.0.1", srv.port))
        req = json.dumps({"prompt": "a", "max_tokens": 1}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(req))
        t0 = time.time()
        dropped = False
        for i in range(len(req)):
            try:
                s.sendall(req[i:i + 1])
                time.sleep(0.5)
            except OSError:
                dropped = True
                break
            if time.time() - t0 > 12:
                break
        s.settimeout(5)
        try:
            dropped = dropped or s.recv(4096) == b""
        except OSError:
            dropped = True
        s.close()
        check(dropped and time.time() - t0 < 12, "slow body (1 byte / 0.5 s) dropped after %.1f s" % (time.time() - t0))

        # --- a generation longer than --timeout (2 s) is not cut off
        t0 = time.time()
        lb = {"prompt": prompt, "max_tokens": 600, "ignore_eos": True, "temperature": 0}
        st, _, d = srv.json("POST", "/v1/completions", lb)
        t1 = time.time()
        st2, _, ev, done, c = stream(srv, "/v1/completions", dict(lb, stream=True))
        t2 = time.time()
        c.close()
        check(st == 200 and d["usage"]["completion_tokens"] == 600 and st2 == 200 and done and
              "".join(e["choices"][0]["text"] for e in ev) == d["choices"][0]["text"],
              "600-token generations (%.1f s, stream %.1f s) complete despite --timeout 2" % (t1 - t0, t2 - t1))

        # --- disconnect cancels and frees the slot at once
        for streaming in (True, False):
            c0 = srv.metric("specdec_requests_cancelled_total")
            s = socket.create_connection(("127.0.0.1", srv.port))
            req = json.dumps({"prompt": prompt, "max_tokens": 1000, "ignore_eos": True, "temperature": 0,
                              "stream": streaming})
            s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (KEY, len(req), req))
                      .encode())
            if streaming:
                s.settimeout(60)
                s.recv(100)  # the first event arrived: the generation is running
            else:  # close while it runs (1000 tokens take ~1 s on a fast machine)
                t_wait = time.time()
                while srv.metric("specdec_slots_busy") == 0 and time.time() - t_wait < 5:
                    time.sleep(0.02)
            s.close()
            t0 = time.time()
            c1 = c0
            while time.time() - t0 < 20:
                c1 = srv.metric("specdec_requests_cancelled_total")
                if c1 > c0 and srv.metric("specdec_slots_busy") == 0:
                    break
                time.sleep(0.1)
            check(c1 == c0 + 1 and srv.metric("specdec_slots_busy") == 0,
                  "disconnect (%s) cancels the generation and frees the slot (%.1f s)"
                  % ("stream" if streaming else "non-stream", time.time() - t0))

        # --- bounded queue: 2 slots + 1 queued; more get 503 + Retry-After
        statuses = []
        lock = threading.Lock()
        def busy():
            st, h, _ = srv.request("POST", "/v1/completions",
                                   {"prompt": prompt, "max_tokens": 48, "ignore_eos": True, "temperature": 0})
            with lock:
                statuses.append((st, h.get("Retry-After")))
        ts = [threading.Thread(target=busy) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        n503 = [h for st, h in statuses if st == 503]
        check(len(n503) >= 1 and all(h == "1" for h in n503) and all(st in (200, 503) for st, _ in statuses),
              "queue full -> 503 with Retry-After (%s)" % sorted(st for st, _ in statuses))
        check(srv.healthy(), "healthy after the overload")

        # --- metrics
        st, h, data = srv.request("GET", "/metrics")
        txt = data.decode()
        for name in ("specdec_requests_total", "specdec_generated_tokens_total", "specdec_drafted_tokens_total",
                     "specdec_accepted_tokens_total", "specdec_mean_accepted_tokens_per_step",
                     "specdec_request_duration_seconds_bucket", "specdec_time_to_first_token_seconds_count"):
            check(name in txt, "metrics: %s" % name)

        # --- the n-gram cache is saved on SIGTERM and loaded at start
        rc = srv.stop()
        check(rc == 0 and os.path.exists(ngc_path) and os.path.getsize(ngc_path) > 0,
              "SIGTERM: exit 0 and the n-gram cache saved")
        srv2 = Server("--parallel", "1", "-t", "1", "--ngram-cache", ngc_path, "--spec", "ngram-cache")
        st, _, d = srv2.json("POST", "/v1/completions", dict(body, draft_max=4), key=None)
        acc = d.get("usage", {}).get("accepted_tokens", -1) if isinstance(d, dict) else -1
        check(st == 200 and d["choices"][0]["text"] == ref["text"] and ngc_first is not None and acc > ngc_first,
              "restart with the saved n-gram cache: more accepted than from an empty cache (%s vs %s)"
              % (acc, ngc_first))
        st, _, d = srv2.json("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]},
                             key=None)
        check(st == 400 and "chat template" in d["error"]["message"], "chat without a template -> 400")
        check(srv2.stop() == 0, "second server: SIGTERM exit 0")
    finally:
        srv.stop()
        try:
            os.unlink(ngc_path)
        except OSError:
            pass
    if failures:
        srv.log.seek(0)
        print("server log:\n" + srv.log.read()[-3000:])
        print("%d FAILED: %s" % (len(failures), failures))
        return 1
    for d in tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    print("all server tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
