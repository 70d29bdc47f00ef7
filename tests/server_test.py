#!/usr/bin/python3
"""server_test.py ZIMAGE FIXTURES [--san] - end-to-end tests of `zimage serve` over loopback.

Python 3 standard library only (http.client, socket, threading), plus PIL (python3-pil) as an
independent PNG decoder. Starts the server on 127.0.0.1 with a free port and the tiny model and
checks: every endpoint's happy path (PNG decodes, metadata, the same PNG bytes as the CLI for the
same seed), 200+ malformed or hostile requests each with the right status while the server keeps
serving, stalled clients timing out, N concurrent clients against a queue of 2 (some 503 with
Retry-After, all accepted jobs finish), cancel and interrupt, the API key, RSS across 1,000
requests, and a clean exit on SIGTERM with a job running. Every loop is bounded; the whole run
takes well under a minute (more under --san, the AddressSanitizer build)."""
import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from PIL import Image

ZIMAGE, FIX = sys.argv[1], sys.argv[2]
SAN = "--san" in sys.argv
MODEL = os.path.join(FIX, "tiny-zimage")
TMP = tempfile.mkdtemp(prefix="zimage-serve-")
MAX_BODY = 65536
TIMEOUT = 2  # server's client inactivity timeout (s)

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("  FAIL", what, flush=True)
    return cond


def ok(what):
    print("  ok  ", what, flush=True)


class Server:
    """A `zimage serve` child process on a free port."""

    def __init__(self, *extra, env=None):
        self.err = open(os.path.join(TMP, "server-%d.err" % time.monotonic_ns()), "w+")
        self.p = subprocess.Popen([ZIMAGE, "serve", "-m", MODEL, "--port", "0", "-t", "1", *extra],
                                  stdout=subprocess.PIPE, stderr=self.err, text=True, env=env)
        line = self.p.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.err.seek(0)
            raise SystemExit("server did not start: %r %s" % (line, self.err.read()))
        self.port = int(m.group(1))

    def rss_kb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, timeout=30):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = "hung"
        self.err.seek(0)
        return rc, self.err.read()


def request(port, method, path, body=None, headers=None, timeout=60):
    """One request on a fresh connection -> (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def jbody(data):
    try:
        return json.loads(data)
    except ValueError:
        return None


def raw(port, payload, read_timeout=10, pause=None):
    """Send raw bytes (optionally in two parts with a pause) and return the status code
    (0 if the server closed the connection without an answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        if pause:
            s.sendall(payload[0])
            time.sleep(pause)
            s.sendall(payload[1])
        else:
            s.sendall(payload)
        buf = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf:
                break
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        return int(m.group(1)) if m else 0
    except (BrokenPipeError, ConnectionResetError):
        return 0
    finally:
        s.close()


def png_of(b64):
    data = base64.b64decode(b64, validate=True)
    im = Image.open(io.BytesIO(data))
    im.load()
    return data, im


def cli_png(prompt, w, h, steps, seed):
    out = os.path.join(TMP, "cli-%d-%d.png" % (seed, w))
    subprocess.run([ZIMAGE, "-m", MODEL, "-p", prompt, "-W", str(w), "-H", str(h), "--steps", str(steps),
                    "--seed", str(seed), "-t", "1", "-o", out], check=True, capture_output=True)
    with open(out, "rb") as f:
        return f.read()


def wait_job(port, jid, states=("done", "failed", "cancelled"), limit=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        st, _, d = request(port, "GET", "/v1/jobs/" + jid)
        j = jbody(d)
        if st != 200 or j["state"] in states:
            return st, j
        time.sleep(0.05)
    return 0, None


def wait_running(port, limit=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        p = jbody(request(port, "GET", "/sdapi/v1/progress")[2])
        if p and p["state"]["job"] and p["state"]["sampling_steps"] > 0:
            return p
        time.sleep(0.02)
    return None


# ---------------------------------------------------------------------------------------------
def test_happy(port):
    st, _, d = request(port, "GET", "/health")
    h = jbody(d)
    check(st == 200 and h["status"] == "ok" and h["model"] == "tiny-zimage" and h["queue_capacity"] == 2,
          "health: %s %s" % (st, d))
    st, _, d = request(port, "GET", "/v1/models")
    check(st == 200 and jbody(d)["data"][0]["id"] == "tiny-zimage", "models: %s %s" % (st, d))
    st, hd, d = request(port, "GET", "/")
    check(st == 200 and hd["content-type"].startswith("text/html") and b"<title>zimage</title>" in d, "page: %s" % st)
    st, _, d = request(port, "GET", "/sdapi/v1/sd-models")
    check(st == 200 and jbody(d)[0]["model_name"] == "tiny-zimage", "sd-models")
    ok("health, models, page")

    # OpenAI: the golden fox (64x64, 8 steps, seed 42) == the CLI's PNG byte for byte
    prompt = "a red fox in the snow, watercolor"
    want = cli_png(prompt, 64, 64, 8, 42)
    st, _, d = request(port, "POST", "/v1/images/generations",
                       {"prompt": prompt, "size": "64x64", "seed": 42, "steps": 8, "response_format": "b64_json",
                        "model": "tiny-zimage", "n": 1})
    j = jbody(d)
    if check(st == 200 and j and len(j["data"]) == 1, "openai generation: %s %s" % (st, d[:300])):
        data, im = png_of(j["data"][0]["b64_json"])
        check(im.size == (64, 64) and im.mode == "RGB", "openai PNG size %s" % (im.size,))
        check(data == want, "openai PNG differs from the CLI's (%d vs %d bytes)" % (len(data), len(want)))
        check("Seed: 42" in im.text.get("parameters", "") and im.text.get("prompt") == prompt,
              "openai PNG metadata: %s" % im.text)
        check(j["data"][0]["seed"] == 42, "openai seed echoed")
        ok("POST /v1/images/generations: same PNG bytes as the CLI (pixels + metadata), %d bytes" % len(data))

    # A1111: a batch of 2 continues the seed (7, 8), each equal to the CLI's image for that seed
    st, _, d = request(port, "POST", "/sdapi/v1/txt2img",
                       {"prompt": "a lighthouse", "negative_prompt": "blurry", "width": 32, "height": 48,
                        "steps": 2, "cfg_scale": 0, "seed": 7, "batch_size": 2, "sampler_name": "Euler",
                        "send_images": True})
    j = jbody(d)
    if check(st == 200 and j and len(j["images"]) == 2, "txt2img: %s %s" % (st, d[:300])):
        info = json.loads(j["info"])
        check(info["all_seeds"] == [7, 8] and info["width"] == 32 and info["height"] == 48 and not info["interrupted"],
              "txt2img info %s" % info)
        for k, seed in enumerate((7, 8)):
            data, im = png_of(j["images"][k])
            out = os.path.join(TMP, "cli-a.png")
            subprocess.run([ZIMAGE, "-m", MODEL, "-p", "a lighthouse", "-n", "blurry", "-W", "32", "-H", "48",
                            "--steps", "2", "-g", "0", "--seed", str(seed), "-t", "1", "-o", out], check=True,
                           capture_output=True)
            check(data == open(out, "rb").read(), "txt2img image %d differs from the CLI's" % k)
            check("Negative prompt: blurry" in im.text.get("parameters", ""), "txt2img metadata %s" % im.text)
        ok("POST /sdapi/v1/txt2img: batch of 2, seeds 7 and 8, each = CLI PNG; info parsed")

    # Jobs: create, poll to done, result, delete, gone
    st, _, d = request(port, "POST", "/v1/jobs", {"prompt": "a boat", "width": 16, "height": 16, "steps": 1, "seed": 3})
    j = jbody(d)
    if check(st == 202 and j["state"] in ("queued", "running") and j["id"].startswith("job-"), "jobs create %s %s" % (st, d)):
        st, j2 = wait_job(port, j["id"])
        ok_done = check(st == 200 and j2["state"] == "done" and j2["progress"] == 1.0, "job done: %s %s" % (st, j2))
        if ok_done:
            data, im = png_of(j2["result"]["images"][0])
            check(im.size == (16, 16) and j2["result"]["seeds"] == [3] and "Seed: 3" in im.text["parameters"],
                  "job result")
        st, _, d = request(port, "DELETE", "/v1/jobs/" + j["id"])
        check(st == 200 and jbody(d)["state"] == "deleted", "delete finished job: %s %s" % (st, d))
        st, _, d = request(port, "GET", "/v1/jobs/" + j["id"])
        check(st == 404 and jbody(d)["error"]["type"] == "not_found", "deleted job is gone: %s" % st)
        ok("jobs API: POST -> poll -> result -> DELETE -> 404")

    st, _, d = request(port, "POST", "/sdapi/v1/img2img", {"prompt": "x", "init_images": []})
    check(st == 501 and "img2img" in jbody(d)["error"]["message"], "img2img 501: %s %s" % (st, d))
    ok("img2img answers 501 until it exists")


def test_long_wait(port):
    # A synchronous client that waits longer than the server's 2 s inactivity timeout (behind a
    # long job that is cancelled after 3 s) still gets its image: waiting is not inactivity.
    a = jbody(request(port, "POST", "/v1/jobs", {"prompt": "long", "width": 512, "height": 512, "steps": 100})[2])
    box = {}

    def waiter():
        t0 = time.monotonic()
        box["r"] = request(port, "POST", "/v1/images/generations", {"prompt": "behind", "size": "16x16", "steps": 1})
        box["dt"] = time.monotonic() - t0

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(TIMEOUT + 1)
    request(port, "DELETE", "/v1/jobs/" + a["id"])
    t.join(60)
    st = box.get("r", (0,))[0]
    check(st == 200 and box["dt"] > TIMEOUT + 0.5, "client waiting %.1f s (timeout %d s) got %s" % (box.get("dt", 0), TIMEOUT, st))
    ok("a client queued for %.1f s (> the %d s idle timeout) still gets its image" % (box.get("dt", 0), TIMEOUT))


def test_progress_cancel(port):
    # a long job: progress moves, interrupt stops it; the sync client gets the images so far (none)
    box = {}

    def long_txt2img():
        box["r"] = request(port, "POST", "/sdapi/v1/txt2img",
                           {"prompt": "slow", "width": 16, "height": 16, "steps": 100, "seed": 1})

    t = threading.Thread(target=long_txt2img)
    t.start()
    p = wait_running(port)
    check(p is not None and 0 <= p["progress"] < 1 and p["state"]["sampling_steps"] == 100,
          "progress while running: %s" % p)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        p2 = jbody(request(port, "GET", "/sdapi/v1/progress")[2])
        if p2["state"]["sampling_step"] >= 2:
            break
        time.sleep(0.05)
    check(0 < p2["progress"] < 1 and p2["eta_relative"] > 0, "progress and ETA move: %s" % p2)
    st, _, d = request(port, "POST", "/sdapi/v1/interrupt")
    check(st == 200 and jbody(d)["interrupted"] is True, "interrupt: %s %s" % (st, d))
    t.join(60)
    st, _, d = box.get("r", (0, 0, b""))
    j = jbody(d)
    check(st == 200 and j["images"] == [] and json.loads(j["info"])["interrupted"] is True,
          "interrupted txt2img answer: %s %s" % (st, d[:200]))
    ok("progress 0..1 with ETA; interrupt stops the running job; client gets interrupted=true")

    # DELETE a running job and a queued one behind it
    a = jbody(request(port, "POST", "/v1/jobs", {"prompt": "a", "width": 16, "height": 16, "steps": 100})[2])
    b = jbody(request(port, "POST", "/v1/jobs", {"prompt": "b", "width": 16, "height": 16, "steps": 1})[2])
    check(b["state"] == "queued" and b.get("queue_position") in (0, 1), "second job queued: %s" % b)
    wait_running(port)
    st, _, d = request(port, "DELETE", "/v1/jobs/" + b["id"])
    check(st == 200 and jbody(d)["state"] == "cancelled", "cancel queued job: %s %s" % (st, d))
    st, _, d = request(port, "DELETE", "/v1/jobs/" + a["id"])
    check(st == 200 and jbody(d)["state"] in ("cancelling", "cancelled"), "cancel running job: %s %s" % (st, d))
    st, ja = wait_job(port, a["id"])
    check(st == 200 and ja["state"] == "cancelled" and ja["error"] == "cancelled", "running job ends cancelled: %s" % ja)
    st, jb = wait_job(port, b["id"])
    check(st == 200 and jb["state"] == "cancelled", "queued job stays cancelled: %s" % jb)
    st, _, d = request(port, "DELETE", "/v1/jobs/" + a["id"])
    check(st == 200 and jbody(d)["state"] == "deleted", "delete cancelled job")
    ok("DELETE cancels a queued and a running job")


# ---------------------------------------------------------------------------------------------
def hostile_cases():
    """(name, method, path, body, headers, expected statuses, param) tuples."""
    cases = []
    G, T, J = "/v1/images/generations", "/sdapi/v1/txt2img", "/v1/jobs"

    def add(name, method, path, body, want, param=None, headers=None):
        cases.append((name, method, path, body, headers, want if isinstance(want, tuple) else (want,), param))

    # bad JSON, on each generation endpoint
    bad_json = ["", "{", "}", "[", "nul", "{\"prompt\":}", "{\"prompt\":\"x\"", "{\"prompt\":\"x\"}}",
                "{\"prompt\":\"x\",}", "{'prompt':'x'}", "{prompt:\"x\"}", "{\"prompt\":\"x\"} trailing",
                "{\"prompt\":NaN}", "{\"prompt\":Infinity}", "{\"prompt\":\"\\ud800\"}", "{\"prompt\":\"a\\u0000b\"}",
                "{\"prompt\":\"x\",\"prompt\":\"y\"}", "[" * 5000 + "]" * 5000, "{\"a\":" * 3000 + "1" + "}" * 3000,
                "\"just a string\"", "42", "null", "true", "[]", "[{\"prompt\":\"x\"}]", "{\"prompt\":\"x\"\x00}",
                "\xff\xfe{}", "{\"prompt\":\"\x01\"}", "{\"seed\":1e999,\"prompt\":\"x\"}"]
    for path in (G, T, J):
        for i, b in enumerate(bad_json):
            add("bad json %d on %s" % (i, path), "POST", path, b, 400)
    # invalid UTF-8 bytes inside a string
    for path in (G, T):
        add("invalid utf-8 on " + path, "POST", path, b'{"prompt":"\xc3\x28"}', 400)
    # wrong types and out-of-range values, per field; the 400 names the field
    wrong = [("a string", "12"), ("a bool", True), ("an array", [1]), ("an object", {"x": 1}), ("a fraction", 1.5)]
    for field in ("steps", "seed", "n"):
        for what, v in wrong:
            add("openai %s %s" % (field, what), "POST", G, {"prompt": "x", field: v}, 400, field)
    for field in ("width", "height", "steps", "seed", "batch_size", "n_iter"):
        for what, v in wrong:
            add("a1111 %s %s" % (field, what), "POST", T, {"prompt": "x", field: v}, 400, field)
            add("jobs %s %s" % (field, what), "POST", J, {"prompt": "x", field: v}, 400, field)
    for field, path in (("prompt", G), ("negative_prompt", G), ("prompt", T), ("negative_prompt", T), ("size", G),
                        ("response_format", G), ("model", G), ("guidance_scale", G), ("cfg_scale", T)):
        for what, v in (("a number", 5), ("a bool", False), ("an array", ["x"]), ("an object", {})):
            if field in ("guidance_scale", "cfg_scale") and what == "a number":
                continue
            add("%s %s %s" % (path, field, what), "POST", path, {"prompt": "x", field: v}, 400, field)
    ranges = [("width", 0), ("width", -16), ("width", 17), ("width", 4096), ("width", 2049), ("width", 10**12),
              ("height", 8), ("height", -1), ("height", 2**63 - 1), ("height", 1e30), ("steps", 0), ("steps", -1),
              ("steps", 101), ("steps", 10**9), ("seed", -2), ("seed", 2**32), ("seed", -2**63), ("batch_size", 0),
              ("batch_size", 5), ("batch_size", 10**6), ("n_iter", 0), ("n_iter", 5), ("cfg_scale", -1),
              ("cfg_scale", 101), ("cfg_scale", 1e308)]
    for field, v in ranges:
        add("a1111 %s=%r" % (field, v), "POST", T, {"prompt": "x", field: v}, 400, field)
    add("a1111 batch_size x n_iter too many", "POST", T, {"prompt": "x", "batch_size": 2, "n_iter": 3}, 400, "batch_size")
    for field, v in (("n", 0), ("n", 5), ("n", -1), ("n", 10**10), ("steps", 1000), ("seed", 2**40),
                     ("guidance_scale", -0.5), ("guidance_scale", 1000)):
        add("openai %s=%r" % (field, v), "POST", G, {"prompt": "x", field: v}, 400, field)
    for s in ("32", "32x", "x32", "32x32x32", "abcxdef", "-32x32", " 32x32", "32X32", "99999999999x16", "0x0",
              "32x33", "4096x4096", "16x16 ", "", "１６x16", "16x-16", "0x16", "+16x16"):
        add("openai size %r" % s, "POST", G, {"prompt": "x", "size": s}, 400, "size")
    add("openai prompt missing", "POST", G, {"size": "16x16"}, 400, "prompt")
    add("openai prompt null", "POST", G, {"prompt": None}, 400, "prompt")
    add("openai response_format url", "POST", G, {"prompt": "x", "response_format": "url"}, 400, "response_format")
    add("prompt too long", "POST", G, {"prompt": "x" * 20000}, 400, "prompt")
    add("jobs prompt too long", "POST", J, {"prompt": "y" * 16385}, 400, "prompt")
    # routes and methods
    for p in ("/v2", "/sdapi/v1/unknown", "/v1/jobs/xyz", "/v1/jobs/job-000000000000", "/v1/jobs/job-zzzzzzzzzzzz",
              "/../etc/passwd", "/v1/images", "/v1/images/generations/x", "/health/", "/favicon.ico",
              "/v1/jobs/job-0000000000000", "/v1/models?x=1&y=2" + "&z" * 10):
        want = 200 if p.startswith("/v1/models") else 404
        add("GET " + p, "GET", p, None, want)
    for m, p in (("PUT", G), ("PATCH", T), ("DELETE", "/health"), ("GET", G), ("GET", T), ("GET", "/sdapi/v1/interrupt"),
                 ("POST", "/sdapi/v1/progress"), ("POST", "/v1/models"), ("DELETE", J), ("PUT", "/"),
                 ("OPTIONS", G), ("TRACE", "/"), ("POST", "/"), ("GET", "/sdapi/v1/img2img"), ("PUT", "/v1/jobs/job-000000000000")):
        add("%s %s" % (m, p), m, p, None if m in ("GET", "DELETE", "OPTIONS", "TRACE") else "{}", 405)
    add("FOO method", "FOO", "/", None, (405, 400, 501))
    # bodies over the limit (Content-Length known), sent whole
    add("body of %d bytes" % (MAX_BODY + 1), "POST", G, "{\"prompt\":\"" + "x" * (MAX_BODY - 12) + "\"}", 413)
    add("body over the limit to an unknown route", "POST", "/nope", "x" * (2 * MAX_BODY), 404)
    return cases


def test_hostile(port):
    cases = hostile_cases()
    n_ok = 0
    for name, method, path, body, headers, want, param in cases:
        try:
            st, hd, d = request(port, method, path, body, headers, timeout=20)
        except (ConnectionError, http.client.HTTPException, socket.timeout) as e:
            check(False, "%s: %s" % (name, e))
            continue
        good = st in want
        j = jbody(d)
        if good and st >= 400:
            good = bool(j and j.get("error", {}).get("message")) if method != "FOO" else True
        if good and param:
            good = j["error"].get("param") == param and param in j["error"]["message"]
        if good and st == 405:
            good = "allow" in hd
        n_ok += check(good, "%s: got %s %s (wanted %s%s)" % (name, st, d[:160], want, ", param " + param if param else ""))
    # raw protocol abuse (status 0 = connection closed without an answer)
    rawcases = [
        ("garbage request line", b"GARBAGE\r\n\r\n", (400, 0)),
        ("bad HTTP version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", (505, 400, 0)),
        ("header without colon", b"GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", (400, 0)),
        ("no Host header (HTTP/1.1)", b"GET /health HTTP/1.1\r\n\r\n", (400,)),
        ("huge header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n", (431, 413, 400, 0)),
        ("huge URL", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (414, 431, 400, 0)),
        ("negative Content-Length", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", (400, 0)),
        ("bogus Content-Length", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", (400, 0)),
        ("huge Content-Length", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
         (400, 413, 0)),
        ("chunked body over the limit", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
         (b"8000\r\n" + b"a" * 0x8000 + b"\r\n") * 3 + b"0\r\n\r\n", (413, 0)),
        ("bad chunk size", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
         (400, 0)),
        ("chunked small valid", b"POST /sdapi/v1/interrupt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"4\r\n{\"x\"\r\n3\r\n:1}\r\n0\r\n\r\n", (200,)),
        ("huge declared body, answered after the headers",
         b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{\"prompt\":\"", (413,)),
        ("declared body 10x the limit", b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
         % (10 * MAX_BODY) + b"{" * 5000, (413,)),
        ("declared body 1 byte over", b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
         % (MAX_BODY + 1), (413,)),
        ("binary junk", bytes(range(256)) * 4, (400, 0)),
        ("only CRLFs", b"\r\n" * 1000, (400, 0)),
    ]
    for name, payload, want in rawcases:
        st = raw(port, payload)
        n_ok += check(st in want, "raw %s: got %s, wanted %s" % (name, st, want))
    # stalled clients: half-sent headers and a truncated body; the server drops them after
    # its 2 s timeout (run together, bounded to 15 s)
    res = {}

    def stall(key, payload):
        t0 = time.monotonic()
        st = raw(port, payload, read_timeout=15)
        res[key] = (st, time.monotonic() - t0)

    stalls = {"half headers": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ",
              "truncated body": b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":",
              "nothing at all": b"",
              "slow chunked": b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":"}
    ts = [threading.Thread(target=stall, args=(k, v)) for k, v in stalls.items()]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    for k in stalls:
        st, dt = res.get(k, (None, 99))
        n_ok += check(st in (0, 408) and dt < TIMEOUT + 5, "stalled client (%s): status %s after %.1f s" % (k, st, dt))
    st, _, d = request(port, "GET", "/health")
    check(st == 200, "server still serving after hostile requests")
    total = len(cases) + len(rawcases) + len(stalls)
    ok("%d of %d malformed/hostile requests got the right status (incl. %d stalled clients dropped after ~%d s)"
       % (n_ok, total, len(stalls), TIMEOUT))
    check(total >= 200, "at least 200 hostile requests (%d)" % total)


def test_concurrency(port):
    # 8 simultaneous clients, queue of 2: 1 running + 2 waiting are accepted, the rest get 503
    n = 8
    res = [None] * n
    go = threading.Barrier(n)

    def client(i):
        go.wait()
        try:
            res[i] = request(port, "POST", "/v1/images/generations",
                             {"prompt": "crowd %d" % i, "size": "32x32", "steps": 3, "seed": i})
        except Exception as e:  # noqa: BLE001 - reported below
            res[i] = (0, {}, str(e).encode())

    ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    codes = [r[0] if r else None for r in res]
    for r in res:
        if r and r[0] == 0:
            print("    client error:", r[2])
    n200, n503 = codes.count(200), codes.count(503)
    check(n200 + n503 == n and n200 >= 2 and n503 >= 1, "concurrency codes %s" % codes)
    for i, r in enumerate(res):
        if r and r[0] == 200:
            _, im = png_of(jbody(r[2])["data"][0]["b64_json"])
            check(im.size == (32, 32) and ("Seed: %d," % i) in im.text["parameters"], "concurrent image %d" % i)
        elif r and r[0] == 503:
            check(r[1].get("retry-after") == "10" and jbody(r[2])["error"]["type"] == "server_busy",
                  "503 has Retry-After: %s" % (r[1],))
    # the jobs API counts against the same queue
    job = {"prompt": "q", "width": 16, "height": 16, "steps": 30}
    a = [request(port, "POST", "/v1/jobs", job)]
    wait_running(port)  # the worker took it: the queue is empty again
    a += [request(port, "POST", "/v1/jobs", job) for _ in range(4)]
    ca = [x[0] for x in a]
    check(ca == [202, 202, 202, 503, 503], "jobs with a full queue: %s" % ca)
    for x in a:
        if x[0] == 202:
            request(port, "DELETE", "/v1/jobs/" + jbody(x[2])["id"])
    ok("%d concurrent clients, queue 2: %d done, %d got 503 + Retry-After; jobs API refused when full" % (n, n200, n503))


def test_rss():
    # its own server; under ASan with a small quarantine, else freed memory parks there (256 MB)
    env = dict(os.environ)
    if SAN:
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4").lstrip(":")
    srv = Server("--queue", "2", env=env)
    try:
        rss_run(srv)
    finally:
        rc, err = srv.stop()
    check(rc == 0 and "ERROR" not in err, "RSS server exit %s: %s" % (rc, err[-2000:]))


def rss_run(srv):
    port = srv.port
    kinds = [("GET", "/health", None), ("GET", "/sdapi/v1/progress", None), ("GET", "/v1/models", None),
             ("POST", "/v1/images/generations", "{bad"), ("GET", "/nope", None),
             ("POST", "/sdapi/v1/txt2img", {"prompt": "x", "width": 17}), ("GET", "/", None)]

    def batch(count, gen_every):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # keep-alive half of the time
        for i in range(count):
            if i % gen_every == gen_every - 1:
                st, _, d = request(port, "POST", "/v1/jobs", {"prompt": "rss %d" % i, "width": 16, "height": 16, "steps": 1})
                if st == 202:
                    wait_job(port, jbody(d)["id"])
                continue
            m, p, b = kinds[i % len(kinds)]
            if i % 2:
                request(port, m, p, b)
            else:
                body = json.dumps(b) if isinstance(b, dict) else b
                c.request(m, p, body=body)
                c.getresponse().read()
        c.close()

    batch(200, 50)  # warm-up: arenas, thread stacks, job table
    r0 = srv.rss_kb()
    t0 = time.monotonic()
    batch(1000, 50)
    dt = time.monotonic() - t0
    r1 = srv.rss_kb()
    limit = 16 * 1024 if SAN else 8 * 1024
    check(r1 - r0 < limit, "RSS grew from %d to %d KiB over 1,000 requests (limit %d KiB)" % (r0, r1, limit))
    ok("RSS over 1,000 requests (20 of them generations): %.1f -> %.1f MiB in %.1f s" % (r0 / 1024, r1 / 1024, dt))


def test_api_key():
    srv = Server("--api-key", "s3cret-key", "--queue", "2")
    try:
        port = srv.port
        st, hd, _ = request(port, "GET", "/v1/models")
        check(st == 401 and hd.get("www-authenticate") == "Bearer", "no key: %s" % st)
        for bad in ("Bearer wrong", "Bearer s3cret-ke", "Bearer s3cret-keyy", "Basic czNjcmV0LWtleQ==", "s3cret-key", "Bearer "):
            st, _, _ = request(port, "GET", "/v1/models", headers={"Authorization": bad})
            check(st == 401, "bad key %r: %s" % (bad, st))
        st, _, _ = request(port, "POST", "/v1/jobs", "{}", headers={"Authorization": "Bearer nope"})
        check(st == 401, "jobs without the key")
        st, _, _ = request(port, "GET", "/v1/models", headers={"Authorization": "Bearer s3cret-key"})
        check(st == 200, "right key: %s" % st)
        check(request(port, "GET", "/health")[0] == 200 and request(port, "GET", "/")[0] == 200,
              "health and page need no key")
        ok("API key: 401 without/with a wrong key (8 variants), 200 with it; /health and / open")
    finally:
        rc, err = srv.stop()
        check(rc == 0, "api-key server exit %s: %s" % (rc, err[-2000:]))


def test_sigterm():
    srv = Server("--queue", "2")
    box = {}

    def long_one():
        box["r"] = request(srv.port, "POST", "/v1/images/generations",
                           {"prompt": "never finished", "size": "16x16", "steps": 100})

    t = threading.Thread(target=long_one)
    t.start()
    wait_running(srv.port)  # the long job runs before the second one is queued (no race on which runs)
    queued = request(srv.port, "POST", "/v1/jobs", {"prompt": "queued", "width": 16, "height": 16, "steps": 1})
    t0 = time.monotonic()
    rc, err = srv.stop()
    dt = time.monotonic() - t0
    t.join(30)
    st = box.get("r", (0,))[0]
    check(rc == 0 and "stopped" in err, "SIGTERM exit code %s, stderr: %s" % (rc, err[-2000:]))
    check(st == 503, "running job's client gets 503 on shutdown: %s" % (box.get("r"),))
    check(queued[0] == 202, "queued job accepted before shutdown")
    check(dt < 10, "shutdown took %.1f s" % dt)
    ok("SIGTERM with a running and a queued job: client answered 503, exit 0 in %.2f s" % dt)


def test_cli_args():
    def run(*a):
        return subprocess.run([ZIMAGE, "serve", *a], capture_output=True, text=True, timeout=30)

    for args, pat in ((["--port", "70000", "-m", MODEL], "between 0 and 65535"), (["--queue", "0", "-m", MODEL], "--queue"),
                      (["--host", "not-an-ip", "-m", MODEL, "--port", "0"], "not an IPv4"),
                      (["--bogus"], "unknown option"), (["--precision", "f64", "-m", MODEL], "not one of"), ([], "no model given"), (["-m", "/nonexistent"], "nonexistent")):
        r = run(*args)
        check(r.returncode != 0 and pat in r.stderr, "serve %s: rc %d, %s" % (args, r.returncode, r.stderr))
    r = run("--help")
    check(r.returncode == 0 and "--api-key" in r.stdout, "serve --help")
    ok("serve option errors (7) and --help")


def timed(fn, *a):
    t0 = time.monotonic()
    fn(*a)
    print("       (%s: %.1f s)" % (fn.__name__, time.monotonic() - t0), flush=True)


def main():
    t_start = time.monotonic()
    timed(test_cli_args)
    srv = Server("--queue", "2", "--timeout", str(TIMEOUT), "--max-body", str(MAX_BODY))
    try:
        timed(test_happy, srv.port)
        timed(test_long_wait, srv.port)
        timed(test_progress_cancel, srv.port)
        timed(test_hostile, srv.port)
        timed(test_concurrency, srv.port)
    finally:
        rc, err = srv.stop()
    check(rc == 0 and "stopped" in err and "ERROR" not in err and "runtime error" not in err,
          "server exit %s; stderr tail: %s" % (rc, err[-3000:]))
    timed(test_rss)
    timed(test_api_key)
    timed(test_sigterm)
    print("server: %d passed, %d failed (%.1f s)" % (passed, failed, time.monotonic() - t_start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
