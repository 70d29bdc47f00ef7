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
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

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
    # a 16x16 one-step job can finish before the 202 is written (3 ms on an idle box): "done" is a valid answer
    if check(st == 202 and j["state"] in ("queued", "running", "done") and j["id"].startswith("job-"), "jobs create %s %s" % (st, d)):
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


# ---------------------------------------------------------------------------------------------
IC = os.path.join(FIX, "imgcond")


def b64file(name):
    with open(os.path.join(IC, name), "rb") as f:
        return base64.b64encode(f.read()).decode()


def png_bytes(w, h, color=(200, 30, 30), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def b64(data):
    return base64.b64encode(data).decode()


def png_header_only(w, h):
    """A PNG signature + a valid IHDR claiming w x h, then nothing: the reader must refuse the size
    before it allocates anything (or fail on the missing data), never try w*h*4 bytes."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def form(fields, files=(), boundary="zimage-test-boundary-7f3a"):
    """multipart/form-data body + Content-Type header, as OpenAI clients send /v1/images/edits."""
    out = b""
    for k, v in fields:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, k, v)).encode()
    for k, fn, data in files:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (boundary, k, fn)).encode() + data + b"\r\n"
    out += ("--%s--\r\n" % boundary).encode()
    return out, {"Content-Type": "multipart/form-data; boundary=" + boundary}


def cli_img(name, *args):
    out = os.path.join(TMP, name)
    subprocess.run([ZIMAGE, "-m", MODEL, "-t", "1", "-o", out, *args], check=True, capture_output=True)
    with open(out, "rb") as f:
        return f.read()


def test_img2img(port):
    # A1111 img2img == the CLI's --init-img PNG, byte for byte (pixels + metadata)
    prompt = "a red fox in the snow, watercolor"
    want = cli_img("cli-i2i.png", "-p", prompt, "--init-img", os.path.join(IC, "init_64x64.png"), "--strength", "0.6",
                   "--seed", "42", "--steps", "8")
    st, _, d = request(port, "POST", "/sdapi/v1/img2img",
                       {"prompt": prompt, "init_images": [b64file("init_64x64.png")], "denoising_strength": 0.6,
                        "seed": 42, "steps": 8, "mask_blur": 4, "resize_mode": 0, "include_init_images": False})
    j = jbody(d)
    if check(st == 200 and j and len(j["images"]) == 1, "img2img: %s %s" % (st, d[:300])):
        data, im = png_of(j["images"][0])
        check(im.size == (64, 64), "img2img size %s" % (im.size,))
        check(data == want, "img2img PNG differs from the CLI's (%d vs %d bytes)" % (len(data), len(want)))
        info = json.loads(j["info"])
        check(info["denoising_strength"] == 0.6 and info["inpainting"] is False and info["width"] == 64,
              "img2img info %s" % info)
        check(j["parameters"]["denoising_strength"] == 0.6 and j["parameters"]["init_images"] is None,
              "img2img parameters %s" % j["parameters"])
        ok("POST /sdapi/v1/img2img: same PNG bytes as the CLI's --init-img (%d bytes)" % len(data))

    # inpainting (data URL prefix, mask, mask_blur) == the CLI's --mask --mask-blur
    want = cli_img("cli-inpaint.png", "-p", prompt, "--init-img", os.path.join(IC, "init_64x64.png"), "--mask",
                   os.path.join(IC, "mask_disc_64x64.png"), "--mask-blur", "4", "--seed", "5", "--steps", "4")
    body = {"prompt": prompt, "init_images": ["data:image/png;base64," + b64file("init_64x64.png")],
            "mask": "data:image/png;base64," + b64file("mask_disc_64x64.png"), "mask_blur": 4, "seed": 5, "steps": 4}
    st, _, d = request(port, "POST", "/sdapi/v1/img2img", body)
    j = jbody(d)
    if check(st == 200 and j and len(j["images"]) == 1, "inpaint: %s %s" % (st, d[:300])):
        data, _ = png_of(j["images"][0])
        check(data == want, "inpaint PNG differs from the CLI's (%d vs %d bytes)" % (len(data), len(want)))
        info = json.loads(j["info"])
        check(info["inpainting"] is True and info["denoising_strength"] == 1.0 and info["mask_blur"] == 4,
              "inpaint info %s" % info)
        ok("POST /sdapi/v1/img2img with mask: same PNG bytes as the CLI's --mask --mask-blur")

    # the jobs API takes the same fields and gives the same image
    st, _, d = request(port, "POST", "/v1/jobs", body)
    jj = jbody(d)
    if check(st == 202, "jobs with init image: %s %s" % (st, d[:300])):
        st, j2 = wait_job(port, jj["id"])
        if check(st == 200 and j2["state"] == "done", "inpaint job: %s %s" % (st, j2)):
            data, _ = png_of(j2["result"]["images"][0])
            check(data == want and j2["result"]["inpainting"] is True, "jobs inpaint image differs from the CLI's")
        request(port, "DELETE", "/v1/jobs/" + jj["id"])
        ok("POST /v1/jobs with init_images + mask: same PNG as the CLI")

    # a batch of 2 with one init image per image: image 1 == CLI (second image, seed 8)
    want = cli_img("cli-i2i-b.png", "-p", "a lighthouse", "--init-img", os.path.join(IC, "init_64x64_jpg_decoded.png"),
                   "-W", "32", "-H", "32", "--strength", "0.75", "--seed", "8", "--steps", "4")
    st, _, d = request(port, "POST", "/sdapi/v1/img2img",
                       {"prompt": "a lighthouse", "init_images": [b64file("init_64x64.png"),
                                                                  b64file("init_64x64_jpg_decoded.png")],
                        "width": 32, "height": 32, "denoising_strength": 0.75, "seed": 7, "steps": 4, "batch_size": 2})
    j = jbody(d)
    if check(st == 200 and j and len(j["images"]) == 2, "img2img batch: %s %s" % (st, d[:300])):
        check(png_of(j["images"][1])[0] == want, "img2img batch image 1 differs from the CLI's")
        check(png_of(j["images"][0])[1].size == (32, 32) and json.loads(j["info"])["all_seeds"] == [7, 8],
              "img2img batch size/seeds")
        ok("img2img batch: init_images[i] for image i, resized to width x height, = CLI")

    # OpenAI edits (JSON): a JPEG, size given == the CLI's -W -H with the default strength
    want = cli_img("cli-edit.png", "-p", "x", "--init-img", os.path.join(IC, "init_64x64.jpg"), "-W", "32", "-H", "48",
                   "--seed", "3", "--steps", "4")
    st, _, d = request(port, "POST", "/v1/images/edits",
                       {"prompt": "x", "image": b64file("init_64x64.jpg"), "size": "32x48", "seed": 3, "steps": 4,
                        "model": "tiny-zimage", "response_format": "b64_json"})
    j = jbody(d)
    if check(st == 200 and j and len(j["data"]) == 1, "edits: %s %s" % (st, d[:300])):
        data, im = png_of(j["data"][0]["b64_json"])
        check(data == want and im.size == (32, 48), "edits PNG differs from the CLI's")
        ok("POST /v1/images/edits (JSON, JPEG image): same PNG bytes as the CLI")
    # the same as multipart/form-data, the way OpenAI clients send it (numbers as text)
    with open(os.path.join(IC, "init_64x64.jpg"), "rb") as f:
        jpg = f.read()
    body, hdr = form([("prompt", "x"), ("size", "32x48"), ("seed", "3"), ("steps", "4"), ("model", "tiny-zimage"),
                      ("response_format", "b64_json")], [("image", "photo.jpg", jpg)])
    st, _, d = request(port, "POST", "/v1/images/edits", body, hdr)
    j = jbody(d)
    if check(st == 200 and j and len(j["data"]) == 1, "multipart edits: %s %s" % (st, d[:300])):
        check(png_of(j["data"][0]["b64_json"])[0] == want, "multipart edits PNG differs from the CLI's")
        ok("POST /v1/images/edits (multipart/form-data): same PNG bytes as the CLI")

    # an OpenAI mask (transparent = edit) == the CLI's white-on-black mask of the same pixels
    want = cli_img("cli-inpaint0.png", "-p", "x", "--init-img", os.path.join(IC, "init_64x64.png"), "--mask",
                   os.path.join(IC, "mask_disc_64x64.png"), "--seed", "5", "--steps", "4")
    disc = Image.open(os.path.join(IC, "mask_disc_64x64.png")).convert("L")
    rgba = Image.open(os.path.join(IC, "init_64x64.png")).convert("RGBA")
    rgba.putalpha(disc.point(lambda v: 255 - v))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    with open(os.path.join(IC, "init_64x64.png"), "rb") as f:
        init_png = f.read()
    body, hdr = form([("prompt", "x"), ("seed", "5"), ("steps", "4"), ("n", "1")],
                     [("image[]", "init.png", init_png), ("mask", "mask.png", buf.getvalue())])
    st, _, d = request(port, "POST", "/v1/images/edits", body, hdr)
    j = jbody(d)
    if check(st == 200 and j and len(j["data"]) == 1, "multipart edits with mask: %s %s" % (st, d[:300])):
        check(png_of(j["data"][0]["b64_json"])[0] == want, "OpenAI alpha mask result differs from the CLI's")
        ok("edits with an OpenAI alpha mask (transparent = edit) == CLI --mask with the same pixels white")


def wait_preview(port, jid, limit=60):
    """Poll the job until it reports a preview (bounded); the job must be long enough to still run."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        st, j = wait_job(port, jid, states=("running", "done", "failed", "cancelled"))
        if st != 200 or j["state"] != "running":
            return j
        if "preview" in j:
            return j
        time.sleep(0.02)
    return None


def test_previews(port):
    # previews by default (every step): a running job shows its latest preview, 1/8 of the image side.
    # The job is long (256x192, 100 steps: seconds) and cancelled once its preview was seen.
    a = jbody(request(port, "POST", "/v1/jobs", {"prompt": "slow", "width": 256, "height": 192, "steps": 100, "seed": 1})[2])
    j = wait_preview(port, a["id"])
    if check(j is not None and j["state"] == "running" and "preview" in j, "job preview: %s" % j):
        _, im = png_of(j["preview"]["image"])
        check(im.size == (32, 24) and j["preview"]["step"] >= 1 and j["preview"]["index"] == 0,
              "preview %s step %s" % (im.size, j["preview"]))
        p = jbody(request(port, "GET", "/sdapi/v1/progress")[2])
        check(p["state"]["job"] == a["id"] and p["current_image"], "progress current_image: %s" % str(p)[:200])
        if p["current_image"]:
            check(png_of(p["current_image"])[1].size == (32, 24), "current_image size")
        p = jbody(request(port, "GET", "/sdapi/v1/progress?skip_current_image=true")[2])
        check(p["current_image"] is None, "skip_current_image: %s" % str(p)[:200])
    request(port, "DELETE", "/v1/jobs/" + a["id"])
    st, ja = wait_job(port, a["id"])
    check(st == 200 and ja["state"] == "cancelled" and "preview" not in ja, "cancelled job keeps no preview: %s" % ja)
    request(port, "DELETE", "/v1/jobs/" + a["id"])
    ok("previews: GET /v1/jobs/ID preview (32x24 PNG for 256x192), /sdapi/v1/progress current_image, skip_current_image")

    # preview_every 0: none. Steps run in order, so once step 3 is reported a preview of an
    # earlier step would exist if previews were on.
    a = jbody(request(port, "POST", "/v1/jobs", {"prompt": "slow", "width": 256, "height": 256, "steps": 100,
                                                 "preview_every": 0})[2])
    t0 = time.monotonic()
    j = None
    while time.monotonic() - t0 < 60:
        st, j = wait_job(port, a["id"], states=("running", "done", "failed", "cancelled"))
        if st != 200 or j["state"] != "running" or j["step"] >= 3:
            break
        time.sleep(0.02)
    p = jbody(request(port, "GET", "/sdapi/v1/progress")[2])
    check(j and j["state"] == "running" and j["step"] >= 3 and "preview" not in j and p["current_image"] is None,
          "preview_every 0: %s %s" % (j, str(p)[:200]))
    request(port, "DELETE", "/v1/jobs/" + a["id"])
    wait_job(port, a["id"])
    request(port, "DELETE", "/v1/jobs/" + a["id"])
    ok("preview_every 0: no preview while running")


def test_long_wait(port):
    # A synchronous client that waits longer than the server's 2 s inactivity timeout (behind a
    # long job that is cancelled after 3 s) still gets its image: waiting is not inactivity. The long
    # job is 1024x1024 x 100 steps: 512x512 took only 2 s on an AMX Xeon.
    a = jbody(request(port, "POST", "/v1/jobs", {"prompt": "long", "width": 1024, "height": 1024, "steps": 100})[2])
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
        box["r"] = request(port, "POST", "/sdapi/v1/txt2img",  # 256x256: still running when interrupted
                           {"prompt": "slow", "width": 256, "height": 256, "steps": 100, "seed": 1})

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
    # a is long enough (512x512, 100 steps: 2-4 s on an idle box) to be still running when cancelled
    a = jbody(request(port, "POST", "/v1/jobs", {"prompt": "a", "width": 512, "height": 512, "steps": 100})[2])
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
    # img2img / edits / jobs image fields: every bad image is a 400 naming its field
    I, E = "/sdapi/v1/img2img", "/v1/images/edits"
    good = b64file("init_64x64.png")
    mask = b64file("mask_disc_64x64.png")
    big_png = png_bytes(2064, 16)
    for name, body, param in (
            ("missing", {"prompt": "x"}, "init_images"), ("null", {"init_images": None}, "init_images"),
            ("a string", {"init_images": good}, "init_images"), ("empty list", {"init_images": []}, "init_images"),
            ("a number", {"init_images": [5]}, "init_images[0]"), ("bad base64", {"init_images": ["!!!!"]}, "init_images[0]"),
            ("base64 with a space", {"init_images": [good[:40] + " " + good[40:]]}, "init_images[0]"),
            ("empty string", {"init_images": [""]}, "init_images[0]"),
            ("not an image", {"init_images": [b64(b"hello, world")]}, "init_images[0]"),
            ("GIF", {"init_images": [b64(b"GIF89a" + b"\0" * 40)]}, "init_images[0]"),
            ("truncated PNG", {"init_images": [b64(base64.b64decode(good)[:300])]}, "init_images[0]"),
            ("truncated JPEG", {"init_images": [b64(base64.b64decode(b64file("init_64x64.jpg"))[:500])]}, "init_images[0]"),
            ("PNG claiming 100000x100000", {"init_images": [b64(png_header_only(100000, 100000))]}, "init_images[0]"),
            ("PNG claiming 5000x16", {"init_images": [b64(png_header_only(5000, 16))]}, "init_images[0]"),
            ("image 2064 wide at its own size", {"init_images": [b64(big_png)]}, "init_images"),
            ("image too small", {"init_images": [b64(png_bytes(8, 8))]}, "init_images"),
            ("data URL without base64", {"init_images": ["data:image/png," + good]}, "init_images[0]"),
            ("data URL without comma", {"init_images": ["data:image/png;base64" + good]}, "init_images[0]"),
            ("too many images", {"init_images": [good] * 5}, "init_images"),
            ("2 images for 1", {"init_images": [good] * 2}, "init_images"),
            ("images of two sizes", {"init_images": [good, b64file("init_64x48.png")], "batch_size": 2}, "init_images[1]"),
            ("mask size mismatch", {"init_images": [good], "mask": b64file("mask_rect_64x48.png")}, "mask"),
            ("mask bad base64", {"init_images": [good], "mask": "@@@@"}, "mask"),
            ("mask not an image", {"init_images": [good], "mask": b64(b"\x89PNG\r\n\x1a\nxxxx")}, "mask"),
            ("mask a number", {"init_images": [good], "mask": 1}, "mask"),
            ("strength 0", {"init_images": [good], "denoising_strength": 0}, "denoising_strength"),
            ("strength -0.5", {"init_images": [good], "denoising_strength": -0.5}, "denoising_strength"),
            ("strength 1.5", {"init_images": [good], "denoising_strength": 1.5}, "denoising_strength"),
            ("strength a string", {"init_images": [good], "denoising_strength": "0.5"}, "denoising_strength"),
            ("mask_blur -1", {"init_images": [good], "mask": mask, "mask_blur": -1}, "mask_blur"),
            ("mask_blur 65", {"init_images": [good], "mask": mask, "mask_blur": 65}, "mask_blur"),
            ("mask_blur a string", {"init_images": [good], "mask_blur": "4"}, "mask_blur"),
            ("preview_every -1", {"init_images": [good], "preview_every": -1}, "preview_every"),
            ("preview_every 101", {"init_images": [good], "preview_every": 101}, "preview_every")):
        add("img2img " + name, "POST", I, dict(body, prompt="x"), 400, param)
    add("jobs mask without init image", "POST", J, {"prompt": "x", "mask": mask}, 400, "mask")
    add("jobs bad init image", "POST", J, {"prompt": "x", "init_images": ["AAAA"]}, 400, "init_images[0]")
    add("jobs strength 2", "POST", J, {"prompt": "x", "init_images": [good], "denoising_strength": 2}, 400,
        "denoising_strength")
    add("txt2img preview_every string", "POST", T, {"prompt": "x", "preview_every": "2"}, 400, "preview_every")
    for name, body, param in (("image missing", {"prompt": "x"}, "image"),
                              ("prompt missing", {"image": good}, "prompt"),
                              ("image a number", {"prompt": "x", "image": 3}, "image"),
                              ("image not an image", {"prompt": "x", "image": b64(b"not a png")}, "image"),
                              ("image list bad", {"prompt": "x", "image": [good, "!"]}, "image"),
                              ("strength 2", {"prompt": "x", "image": good, "strength": 2}, "strength"),
                              ("mask mismatch", {"prompt": "x", "image": good, "mask": b64file("mask_rect_64x48.png")},
                               "mask"),
                              ("size bad", {"prompt": "x", "image": good, "size": "10x10"}, "size"),
                              ("n 5", {"prompt": "x", "image": good, "n": 5}, "n")):
        add("edits " + name, "POST", E, body, 400, param)
    mp_body, mp_hdr = form([("prompt", "x")])
    add("edits multipart without image", "POST", E, mp_body, 400, "image", mp_hdr)
    gpng = base64.b64decode(good)
    for name, (body, hdr), param in (
            ("image not an image", form([("prompt", "x")], [("image", "a.png", b"GIF89a....")]), "image[0]"),
            ("image empty file", form([("prompt", "x")], [("image", "a.png", b"")]), "image[0]"),
            ("n not a number", form([("prompt", "x"), ("n", "two")], [("image", "a.png", gpng)]), "n"),
            ("n 9", form([("prompt", "x"), ("n", "9")], [("image", "a.png", gpng)]), "n"),
            ("strength 0", form([("prompt", "x"), ("strength", "0")], [("image", "a.png", gpng)]), "strength"),
            ("prompt missing", form([("size", "64x64")], [("image", "a.png", gpng)]), "prompt"),
            ("mask without image", form([("prompt", "x")], [("mask", "m.png", gpng)]), "image"),
            ("mask size mismatch", form([("prompt", "x")], [("image", "a.png", gpng),
                                                           ("mask", "m.png", png_bytes(32, 32, (0, 0, 0, 0), "RGBA"))]),
             "mask"),
            ("2 images for n 1", form([("prompt", "x")], [("image[]", "a.png", gpng), ("image[]", "b.png", gpng)]),
             "image"),
            ("40 fields", form([("f%d" % i, "x") for i in range(40)]), None),
            ("prompt not UTF-8", (b"--bnd42\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n\xff\xfe\r\n"
                                  b"--bnd42--\r\n", {"Content-Type": "multipart/form-data; boundary=bnd42"}), "prompt"),
            ("not terminated", (b"--bnd42\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nxxxxx",
                                {"Content-Type": "multipart/form-data; boundary=bnd42"}), None),
            ("no boundary", (b"--b\r\n\r\n", {"Content-Type": "multipart/form-data"}), None),
            ("garbage", (b"\x00" * 1000, {"Content-Type": "multipart/form-data; boundary=bnd42"}), None),
            ("one-letter boundary", (b"--b\r\n\r\n--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"}), None)):
        add("edits multipart " + name, "POST", E, body, 400, param, hdr)
    add("multipart to img2img", "POST", I, mp_body, 415, None, mp_hdr)
    add("multipart to jobs", "POST", J, mp_body, 415, None, mp_hdr)
    # routes and methods
    for p in ("/v2", "/sdapi/v1/unknown", "/v1/jobs/xyz", "/v1/jobs/job-000000000000", "/v1/jobs/job-zzzzzzzzzzzz",
              "/../etc/passwd", "/v1/images", "/v1/images/generations/x", "/health/", "/favicon.ico",
              "/v1/jobs/job-0000000000000", "/v1/models?x=1&y=2" + "&z" * 10):
        want = 200 if p.startswith("/v1/models") else 404
        add("GET " + p, "GET", p, None, want)
    for m, p in (("PUT", G), ("PATCH", T), ("DELETE", "/health"), ("GET", G), ("GET", T), ("GET", "/sdapi/v1/interrupt"),
                 ("POST", "/sdapi/v1/progress"), ("POST", "/v1/models"), ("DELETE", J), ("PUT", "/"),
                 ("OPTIONS", G), ("TRACE", "/"), ("POST", "/"), ("GET", "/sdapi/v1/img2img"), ("PUT", "/v1/jobs/job-000000000000"),
                 ("GET", "/v1/images/edits")):
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
    # (the running one is 1024x1024 x 100 steps, cancelled below: a short one could finish before the
    # four POSTs and free its slot, as 16x16 x 30 steps once did under load)
    long_job = {"prompt": "q", "width": 1024, "height": 1024, "steps": 100}
    job = {"prompt": "q", "width": 16, "height": 16, "steps": 30}
    a = [request(port, "POST", "/v1/jobs", long_job)]
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
        # the default body limit (16 MiB) takes an incompressible 1024x1024 PNG in base64 (~4.2 MB): it is
        # read and decoded (the answer is about the strength, not 413)
        noise = io.BytesIO()
        Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3)).save(noise, "PNG", compress_level=1)
        body = {"prompt": "x", "init_images": [b64(noise.getvalue())], "denoising_strength": 2}
        st, _, d = request(port, "POST", "/sdapi/v1/img2img", body, headers={"Authorization": "Bearer s3cret-key"})
        check(st == 400 and jbody(d)["error"]["param"] == "denoising_strength",
              "1024x1024 noise PNG (%d bytes of base64): %s %s" % (len(body["init_images"][0]), st, d[:200]))
        ok("default --max-body takes a 1024x1024 noise PNG as base64 (%.1f MB)" % (len(body["init_images"][0]) / 1e6))
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
                      (["--bogus"], "unknown option"), (["--precision", "f64", "-m", MODEL], "not one of"), ([], "no model given"), (["-m", "/nonexistent"], "nonexistent"),
                      (["--preview-every", "101", "-m", MODEL], "between 0 and 100"),
                      (["--vae-precision", "int8", "-m", MODEL], "not one of auto, f32, bf16"),
                      (["--precision", "int8", "-m", "/nonexistent"], "nonexistent")):  # int8 parsed, then the model refused
        r = run(*args)
        check(r.returncode != 0 and pat in r.stderr, "serve %s: rc %d, %s" % (args, r.returncode, r.stderr))
    r = run("--help")
    check(r.returncode == 0 and "--api-key" in r.stdout, "serve --help")
    ok("serve option errors (10) and --help")


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
        timed(test_img2img, srv.port)
        timed(test_previews, srv.port)
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
