"""Benchmark: what one visitor's first page load costs, in a real browser against ``python app.py --sandbox``.

Each load is a fresh Chromium context (no cache, as a new visitor), timed from navigation until the prompt box
is usable, then given 1.5 s for the page's own follow-up requests. Prints, per load and as medians: seconds
until usable, the app process's CPU seconds for the load, and how many answers the page fetched.

.venv/bin/python bench/page_load.py              # 6 loads (the first warms the server's memory)
.venv/bin/python bench/page_load.py --loads 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.app_process import app_process

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=6)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp, app_process(Path(tmp)) as app, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        rows = []
        for n in range(args.loads):
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            answers: list[int] = []
            page.on("response", lambda response, seen=answers: seen.append(response.status))
            cpu, started = cpu_s(app.process.pid), time.perf_counter()
            page.goto(app.url)
            expect(page.locator("#text-prompt textarea")).to_be_visible(timeout=30_000)
            usable = time.perf_counter() - started
            page.wait_for_timeout(1500)
            rows.append((usable, cpu_s(app.process.pid) - cpu, len(answers)))
            print(f"load {n + 1}: usable after {usable:.2f} s, app CPU {rows[-1][1]:.2f} s, {len(answers)} answers")
            context.close()
        browser.close()
    later = rows[1:] or rows
    print(f"median of loads 2-{len(rows)}: usable after {statistics.median(r[0] for r in later):.2f} s, ", end="")
    print(f"app CPU {statistics.median(r[1] for r in later):.2f} s per page load")


if __name__ == "__main__":
    main()
