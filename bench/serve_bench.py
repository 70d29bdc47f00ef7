#!/usr/bin/python3
"""serve_bench.py ZIMAGE MODEL [N] - requests/s of `zimage serve` and its per-request overhead
over the CLI path, with a small model (PERF.md, "zimage serve").

  1. GET /health: requests/s on one keep-alive connection and with a new connection each time.
  2. The same generation (16x16, 1 step, fixed seed) N times:
       CLI      one `zimage` process per image (load + generate + PNG file), wall time;
       CLI gen  the part of that the CLI itself reports as generation ("total" minus load);
       server   POST /v1/images/generations on a warm server (HTTP + JSON + queue + PNG in memory
                + base64), wall time.
     server - CLI gen is what the server adds per image; CLI - server is what it saves.
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
GEN = {"prompt": "a red fox in the snow", "size": "16x16", "steps": 1, "seed": 42}


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

        body = json.dumps(GEN)
        server, cli, cli_gen = [], [], []
        for _ in range(N):
            c = http.client.HTTPConnection("127.0.0.1", port)
            t0 = time.perf_counter()
            c.request("POST", "/v1/images/generations", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            server.append(time.perf_counter() - t0)
            c.close()
            assert r.status == 200
            t0 = time.perf_counter()
            out = subprocess.run([ZIMAGE, "-m", MODEL, "-p", GEN["prompt"], "-W", "16", "-H", "16", "--steps", "1",
                                  "--seed", "42", "-t", "1", "-o", "/tmp/serve_bench.png"],
                                 capture_output=True, text=True, check=True).stdout
            cli.append(time.perf_counter() - t0)
            m = re.search(r"time: load ([\d.]+) s.*total ([\d.]+) s", out)
            cli_gen.append(float(m.group(2)) - float(m.group(1)))
        med = statistics.median
        print("generation 16x16, 1 step, median of %d:" % N)
        print("  CLI process   %.1f ms  (%.2f images/s)" % (1e3 * med(cli), 1 / med(cli)))
        print("  CLI gen only  %.1f ms" % (1e3 * med(cli_gen)))
        print("  server        %.1f ms  (%.2f images/s)" % (1e3 * med(server), 1 / med(server)))
        print("  server overhead over CLI generation: %.1f ms per request" % (1e3 * (med(server) - med(cli_gen))))
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)


if __name__ == "__main__":
    main()
