#!/usr/bin/python3
"""server_browser_test.py ZIMAGE FIXTURES SCREENSHOT.png - the web page of `zimage serve` in a real
headless Chromium (Debian chromium + chromium-driver + python3-selenium).

Loads the page, fills in a 64x64 generation with the tiny model, clicks Generate, waits for the
image to appear (decoded by the browser at 64x64), checks the parameters line, the download link
and the progress bar, and that the browser logged no console errors; saves a screenshot.
Missing Chromium or Selenium is a failure (exit 1), never a silent skip."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ZIMAGE, FIX, SHOT = sys.argv[1], sys.argv[2], sys.argv[3]

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    print("browser: FAIL: python3-selenium is missing (%s); run scripts/install-deps.sh" % e)
    sys.exit(1)

DRIVER = "/usr/bin/chromedriver"
for exe in (DRIVER, "/usr/bin/chromium"):
    if not os.access(exe, os.X_OK):
        print("browser: FAIL: %s is missing; install chromium and chromium-driver (scripts/install-deps.sh)" % exe)
        sys.exit(1)

failures = []


def check(cond, what):
    print("  %s %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        failures.append(what)


def main():
    t_start = time.monotonic()
    err = tempfile.TemporaryFile(mode="w+")
    srv = subprocess.Popen([ZIMAGE, "serve", "-m", os.path.join(FIX, "tiny-zimage"), "--port", "0", "-t", "1"],
                           stdout=subprocess.PIPE, stderr=err, text=True)
    line = srv.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        print("browser: FAIL: server did not start: %r" % line)
        srv.kill()
        return 1
    url = "http://127.0.0.1:%s/" % m.group(1)
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server",
              "--window-size=1100,900", "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
        driver.set_page_load_timeout(30)
        driver.get(url)
        check(driver.title == "zimage", "page loads (title %r)" % driver.title)
        WebDriverWait(driver, 10).until(lambda d: "tiny-zimage" in d.find_element(By.ID, "model").text)
        check(True, "page asked /health for the model name")
        fields = {"prompt": "a red fox in the snow, watercolor", "width": "64", "height": "64", "steps": "8",
                  "seed": "42"}
        for k, v in fields.items():
            el = driver.find_element(By.ID, k)
            el.clear()
            el.send_keys(v)
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 120).until(EC.visibility_of_element_located((By.ID, "image")))
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(
            "const i = document.getElementById('image'); return i.complete && i.naturalWidth > 0;"))
        w, h = driver.execute_script("const i = document.getElementById('image'); return [i.naturalWidth, i.naturalHeight];")
        check((w, h) == (64, 64), "the image appears and decodes at %dx%d" % (w, h))
        params = driver.find_element(By.ID, "params").text
        check("seed 42" in params and "8 steps" in params and "64" in params, "parameters shown: %r" % params)
        dl = driver.find_element(By.ID, "download")
        check(dl.is_displayed() and dl.get_attribute("download") == "zimage-42.png" and
              dl.get_attribute("href").startswith("data:image/png;base64,iVBOR"), "download link")
        check(driver.find_element(By.ID, "bar").get_attribute("style").find("100%") >= 0, "progress bar full")
        check(driver.find_element(By.ID, "error").text == "", "no error shown")
        check(driver.find_element(By.ID, "generate").is_enabled(), "Generate enabled again")
        os.makedirs(os.path.dirname(os.path.abspath(SHOT)), exist_ok=True)
        driver.save_screenshot(SHOT)
        check(os.path.getsize(SHOT) > 1000, "screenshot saved to %s" % SHOT)
        # a bad size is reported on the page, not in the console
        el = driver.find_element(By.ID, "width")
        el.clear()
        el.send_keys("4096")
        driver.execute_script("document.getElementById('width').removeAttribute('max');")
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "error").text != "")
        check("width" in driver.find_element(By.ID, "error").text, "server error shown on the page: %r" %
              driver.find_element(By.ID, "error").text)
        # a long generation shows the live preview (current_image, 1/8 side) until Cancel
        for k, v in (("width", "512"), ("height", "512"), ("steps", "100")):
            el = driver.find_element(By.ID, k)
            el.clear()
            el.send_keys(v)
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "const i = document.getElementById('preview'); return i.style.display === 'block' && i.complete && "
            "i.naturalWidth > 0;"))
        pw = driver.execute_script("return document.getElementById('preview').naturalWidth;")
        check(pw == 64, "live preview shown at %d px (512 / 8)" % pw)
        driver.find_element(By.ID, "cancel").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "generate").is_enabled())
        check(not driver.find_element(By.ID, "preview").is_displayed(), "preview hidden after the generation ends")
        logs = driver.get_log("browser")
        # the 400 of the deliberate bad request is logged by Chromium as a failed resource load
        severe = [e for e in logs if e["level"] == "SEVERE" and "status of 400" not in e["message"]]
        for e in logs:
            print("    console:", e["level"], e["message"][:200])
        check(not severe, "no console errors (%d log entries): %s" % (len(logs), severe))
    except Exception as e:  # noqa: BLE001 - any browser failure fails the test loudly
        check(False, "browser session: %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
    finally:
        if driver:
            driver.quit()
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(30)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = "hung"
        err.seek(0)
        check(rc == 0, "server exit %s %s" % (rc, err.read()[-2000:]))
    print("browser: %d failed (%.1f s)" % (len(failures), time.monotonic() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
