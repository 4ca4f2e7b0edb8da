"""The dashboard in a real browser: Playwright drives Debian's Chromium against `streamlit run app.py`.

This is the one test that sees the live updates (AppTest sees only finished script runs). It
runs the REAL default, ImageNet EfficientNet-Lite0 on Fashion-MNIST (10 images per class, 15
epochs, 64 px): on the 2-core CPU it takes about a minute when the machine is otherwise idle.
The waits are bounded but generous, because a busy machine can make it several times slower.
Timings go to artifacts/browser.json, the page mid-run to artifacts/browser_live.png and the
finished page to artifacts/browser.png.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--headless",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
SERVER_START_S = 60
PAGE_LOAD_S = 120  # the first script run imports torch and timm and loads Fashion-MNIST
RUN_S = 600  # the whole default comparison, on a possibly busy 2-core CPU

# The test accuracy chart's traces, name -> number of points (Plotly's own data on the page).
ACCURACY_POINTS_JS = """() => {
  const points = {};
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const title = (gd.layout && gd.layout.title && gd.layout.title.text) || '';
    if (!title.startsWith('Test accuracy')) continue;
    for (const trace of gd._fullData || []) points[trace.name] = trace._length || 0;
  }
  return points;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`streamlit run app.py` on a free port, stopped after the tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's Chromium is missing: apt-get install chromium (make setup does it as root)")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if Path(TCMALLOC).exists() and "tcmalloc" not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = TCMALLOC
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit.log", "w")
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--server.headless", "true"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert proc.poll() is None, f"streamlit exited; see {log.name}"
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"streamlit did not answer within {SERVER_START_S} s"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
        log.close()


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(server)
        yield page
        browser.close()


def test_a_default_run_grows_both_curves_live_and_ends_with_a_verdict(page):
    from playwright.sync_api import expect

    expect(page.get_by_text("Does a pretrained network learn faster?")).to_be_visible(timeout=PAGE_LOAD_S * 1000)
    run = page.get_by_role("button", name="Run", exact=True)
    expect(run).to_be_enabled(timeout=PAGE_LOAD_S * 1000)

    # Move the freeze-depth slider with the keyboard: k = 4 -> 5, and the page redraws its picture.
    freeze = page.get_by_test_id("stSlider").filter(has_text="Freeze depth").get_by_role("slider")
    freeze.focus()
    freeze.press("ArrowRight")
    expect(page.get_by_text("5: up to stage4")).to_be_visible()
    expect(page.get_by_text("k = 5:")).to_be_visible()
    expect(run).to_be_enabled()

    run.click()
    started = time.monotonic()
    first_point = both_arms = None
    seen = set()  # how many points the finetune curve had, each time we looked
    deadline = started + RUN_S
    while time.monotonic() < deadline:
        points = page.evaluate(ACCURACY_POINTS_JS)
        seen.add(points.get("finetune", 0))
        if first_point is None and any(points.get(arm, 0) > 0 for arm in ("finetune", "scratch")):
            first_point = time.monotonic() - started
        if both_arms is None and points.get("finetune", 0) > 0 and points.get("scratch", 0) > 0:
            both_arms = time.monotonic() - started
            # Mid-run: the progress bar, the device and its throughput, and the Stop button.
            expect(page.get_by_text("Throughput")).to_be_visible()
            expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "browser_live.png"))
        if page.get_by_text("wins:").count():
            break
        page.wait_for_timeout(250)
    verdict_s = time.monotonic() - started
    verdict = page.get_by_text("wins:")
    expect(verdict).to_be_visible(timeout=1000)  # fails here if the run did not finish within RUN_S

    # The curves grew while training, point by point before the verdict, and end with every epoch.
    assert first_point is not None and both_arms is not None and both_arms < verdict_s
    assert len(seen & set(range(1, 15))) >= 3, f"the finetune curve was seen with {sorted(seen)} points"
    page.wait_for_function(
        f"() => {{ const p = ({ACCURACY_POINTS_JS})(); return p.finetune === 15 && p.scratch === 15; }}",
        timeout=30_000,
    )
    expect(page.get_by_role("tab", name="Confusion matrices")).to_be_visible()
    # Streamlit scrolls inside its main element, not the page: make the window as tall as the content.
    for _ in range(2):  # twice: the page reflows at the new size
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1600, "height": max(1000, height)})
        page.wait_for_timeout(1500)  # let the charts redraw at the new size
    page.screenshot(path=str(ARTIFACTS / "browser.png"))
    timings = {
        "first_point_s": round(first_point, 1),
        "both_arms_plotted_s": round(both_arms, 1),
        "verdict_s": round(verdict_s, 1),
        "verdict": verdict.first.inner_text(),
        "load_average": os.getloadavg(),
    }
    (ARTIFACTS / "browser.json").write_text(json.dumps(timings, indent=2))
    print(timings)
