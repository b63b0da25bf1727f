"""Drive the real app in headless Chromium: start `streamlit run`, sign in, wait until the app is idle.

Shared by the browser tests and ``bench/bench_lab_slider.py``. "Idle" is Streamlit's own
signal, not a pause: the app root's ``data-test-script-state`` attribute, whose changes a
MutationObserver records with their time (a busy machine only makes the wait longer).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
WAIT_MS = 120_000  # the longest any step may take on a busy machine before the test says so

# Every change of the app's script state, with the time it happened (performance.now(), ms).
RECORD_SCRIPT_STATE = """
() => {
  if (window.__rebalRuns) return;
  window.__rebalRuns = [];
  const attach = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) { setTimeout(attach, 20); return; }
    const note = () => window.__rebalRuns.push([app.getAttribute('data-test-script-state'), performance.now()]);
    note();
    new MutationObserver(note).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  };
  attach();
}
"""

# True when a run that started after mark ``n`` has finished (or no run is pending at all).
RUN_FINISHED_SINCE = """
(n) => {
  const runs = window.__rebalRuns || [];
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  return runs.slice(n).some(([state]) => state === 'running');
}
"""

# Resolves after the browser has painted twice: what the user sees is on screen.
PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now()))))"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    database_url: str, extra_env: dict | None = None, cwd: Path = ROOT, python: str = sys.executable
) -> Iterator[str]:
    """``streamlit run app.py`` (in ``cwd``, with ``python``) headless on a free port against
    ``database_url``; yields its URL once healthy."""
    port = free_port()
    env = {**os.environ, "REBAL_DATABASE_URL": database_url, **(extra_env or {})}
    # The server's output goes to a file: a pipe nobody reads would block it once full.
    log = tempfile.NamedTemporaryFile(prefix="rebal-streamlit-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless=true",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            "--browser.gatherUsageStats=false",
        ],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + WAIT_MS / 1000
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
    if proc.poll() is not None:
        raise RuntimeError("streamlit did not become healthy:\n" + Path(log.name).read_text(errors="replace")[-3000:])
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        os.unlink(log.name)


@contextlib.contextmanager
def chromium() -> Iterator:
    """Debian's headless Chromium through Playwright (``playwright install`` cannot download here)."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing; `make test-deps` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def leaves_the_machine(url: str) -> bool:
    parts = urlparse(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in ("127.0.0.1", "localhost", "::1")


def runs_so_far(page) -> int:
    """A mark for :func:`wait_for_run`: how many script-state changes the page has seen."""
    return page.evaluate("() => (window.__rebalRuns || []).length")


def wait_for_run(page, since: int, timeout: float = WAIT_MS) -> float:
    """Wait until a script run that started after mark ``since`` has finished and its result is painted;
    returns the time it was painted (performance.now(), ms)."""
    page.wait_for_function(RUN_FINISHED_SINCE, arg=since, timeout=timeout, polling=20)
    return page.evaluate(PAINTED)


def wait_idle(page, timeout: float = WAIT_MS) -> None:
    """Wait until the app is connected, no script runs, and the screen is painted."""
    page.wait_for_function(
        """() => { const a = document.querySelector('[data-testid="stApp"]');
                   return a && a.getAttribute('data-test-connection-state') === 'CONNECTED'
                     && a.getAttribute('data-test-script-state') === 'notRunning'; }""",
        timeout=timeout,
        polling=20,
    )
    page.evaluate(PAINTED)


def open_page(browser, server: str, path: str, user: str, password: str):
    """A new tab on ``path``, signed in through the form (each page load is a new session), idle.

    ``page.outside`` collects every request to a host other than this machine."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(WAIT_MS)  # every wait and click: a busy machine is slow, not broken
    page.outside = []
    page.on("request", lambda r: page.outside.append(r.url) if leaves_the_machine(r.url) else None)
    page.add_init_script(f"({RECORD_SCRIPT_STATE})()")
    page.goto(f"{server}/{path}")
    page.get_by_label("User name").fill(user, timeout=WAIT_MS)
    page.get_by_label("Password", exact=True).fill(password)
    since = runs_so_far(page)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {user}").wait_for(timeout=WAIT_MS)
    wait_for_run(page, since)
    wait_idle(page)
    return page
