#!/usr/bin/python3
"""serve_bench.py ZIMAGE MODEL [N] - requests/s of `zimage serve` and its per-request overhead
over the CLI path, with a small model (PERF.md, "zimage serve").

  1. GET /health: requests/s on one keep-alive connection and with a new connection each time.
  2. The same generation (16x16 and 256x256, 1 step, fixed seed) N times each way:
       CLI      one `zimage` process per image (load + generate + PNG file), wall time, and the
                generation time it reports ("total" minus load);
       server   POST /sdapi/v1/txt2img on a warm server, wall time, and the generation time the
                server reports (info.generation_seconds = zimage_timings.total).
     server wall - server generation = what the server adds per request (HTTP, JSON, queue
     hand-off, PNG encode, base64); CLI wall - server wall = what a warm server saves per image.
All on 127.0.0.1; the model is loaded once by the server. Medians of N runs."""
import http.client
import json
import re
import signal
import statistics
import subprocess
import sys
import time

ZIMAGE, MODEL = sys.argv[1], sys.argv[2]
N = int(sys.argv[3]) if len(sys.argv) > 3 else 20


def main():
    srv = subprocess.Popen([ZIMAGE, "serve", "-m", MODEL, "--port", "0", "-t", "1"], stdout=subprocess.PIPE, text=True)
    port = int(re.search(r":(\d+)/", srv.stdout.readline()).group(1))
    try:
        c = http.client.HTTPConnection("127.0.0.1", port)
        t0 = time.perf_counter()
        for _ in range(2000):
            c.request("GET", "/health")
            c.getresponse().read()
        ka = 2000 / (time.perf_counter() - t0)
        c.close()
        t0 = time.perf_counter()
        for _ in range(500):
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request("GET", "/health")
            c.getresponse().read()
            c.close()
        nc = 500 / (time.perf_counter() - t0)
        print("GET /health: %.0f req/s keep-alive, %.0f req/s new connection each" % (ka, nc))

        med = statistics.median
        for side in (16, 256):
            gen = {"prompt": "a red fox in the snow", "width": side, "height": side, "steps": 1, "seed": 42}
            body = json.dumps(gen)
            server, server_gen, cli, cli_gen = [], [], [], []
            for _ in range(N):
                c = http.client.HTTPConnection("127.0.0.1", port)
                t0 = time.perf_counter()
                c.request("POST", "/sdapi/v1/txt2img", body=body, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                server.append(time.perf_counter() - t0)
                c.close()
                assert r.status == 200
                server_gen.append(json.loads(json.loads(data)["info"])["generation_seconds"])
                t0 = time.perf_counter()
                out = subprocess.run([ZIMAGE, "-m", MODEL, "-p", gen["prompt"], "-W", str(side), "-H", str(side),
                                      "--steps", "1", "--seed", "42", "-t", "1", "-o", "/tmp/serve_bench.png"],
                                     capture_output=True, text=True, check=True).stdout
                cli.append(time.perf_counter() - t0)
                m = re.search(r"time: load ([\d.]+) s.*total ([\d.]+) s", out)
                cli_gen.append(float(m.group(2)) - float(m.group(1)))
            over = [a - b for a, b in zip(server, server_gen)]
            print("generation %dx%d, 1 step, median of %d:" % (side, side, N))
            print("  CLI process         %7.1f ms  (%.2f images/s; generation inside it %.1f ms)"
                  % (1e3 * med(cli), 1 / med(cli), 1e3 * med(cli_gen)))
            print("  server request      %7.1f ms  (%.2f images/s; generation inside it %.1f ms)"
                  % (1e3 * med(server), 1 / med(server), 1e3 * med(server_gen)))
            print("  server overhead     %7.1f ms per request (HTTP + JSON + queue + PNG encode + base64)" % (1e3 * med(over)))
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)


if __name__ == "__main__":
    main()
