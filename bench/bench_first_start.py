"""First start on a fresh clone: from nothing to the first page a person sees (issue 14).

Clones this repository's HEAD into a temporary folder (what a new user has), then times:
  install   `make install` into the clone's own .venv (only with --install: minutes, mostly pip)
  load      `python -m rebal_core init`: the sample generated, validated, stored, forecast
  serve     `streamlit run` until /_stcore/health answers
  first     Chromium signs in and the home page's recommendation is drawn (it plans once)
Baseline in the same run: a second start of the same clone (store loaded, nothing to generate).

    PYTHONPATH=. .venv/bin/python bench/bench_first_start.py [--install]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import harness  # noqa: E402

PASSWORD = "first-start-admin-1"


def timed(what: str, command: list[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t
    print(f"  {what:<8} {seconds:7.1f} s", flush=True)
    return seconds


def first_page(clone: Path, python: str, url: str) -> tuple[float, float]:
    """Seconds to a healthy server, then to the signed-in home page with its recommendation drawn."""
    env = {**os.environ, "PYTHONPATH": str(clone)}
    t = time.perf_counter()
    with harness.serve(url, extra_env=env, cwd=clone, python=python) as server:
        healthy = time.perf_counter() - t
        with harness.chromium() as browser:
            t = time.perf_counter()
            page = harness.open_page(browser, server, "", "admin", PASSWORD)
            page.wait_for_selector(".js-plotly-plot")  # the recommendation's waterfall
            drawn = time.perf_counter() - t
            assert page.locator('[data-testid="stException"]').count() == 0
    return healthy, drawn


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--install", action="store_true", help="also time `make install` into a fresh .venv")
    opts = args.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rebal-first-start-"))
    clone = work / "rebal"
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {**os.environ, "PYTHONPATH": str(clone)}
        env.pop("REBAL_DATABASE_URL", None)
        print(f"First start of a fresh clone ({clone}):")
        python = sys.executable
        figures = {}
        if opts.install:
            figures["install"] = timed("install", ["make", "install"], clone, env)
            python = str(clone / ".venv" / "bin" / "python")
        figures["load"] = timed("load", [python, "-m", "rebal_core", "init"], clone, env)
        url = f"sqlite:///{clone / 'data' / 'rebal.db'}"
        from rebal_core import services
        from rebal_core.governance.identity import Actor
        from rebal_core.services import accounts

        engine = services.make_engine(url)
        accounts.set_password(engine=engine, actor=Actor("bench", "admin"), username="admin", password=PASSWORD)
        engine.dispose()
        figures["serve"], figures["first"] = first_page(clone, python, url)
        print(f"  {'serve':<8} {figures['serve']:7.1f} s")
        print(f"  {'first':<8} {figures['first']:7.1f} s  (sign-in to the home page's recommendation)")
        print(f"  total    {sum(figures.values()):7.1f} s")
        healthy, drawn = first_page(clone, python, url)
        print(
            f"Second start (baseline): serve {healthy:.1f} s, first page {drawn:.1f} s, total {healthy + drawn:.1f} s"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
