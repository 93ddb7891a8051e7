"""Benchmark: a 300 MB body streamed to /webhooks/fluxapi (acceptance 4 of issue 13).

Prints the app's answer, how much had been sent when it answered, and its memory before and after.

.venv/bin/python bench/webhook_body.py
.venv/bin/python bench/webhook_body.py --mb 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.app_process import app_process
from tests.security.test_04_webhook_body_cap import stream_body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=300, help="size of the body, in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, app_process(Path(tmp)) as app:
        before = app.rss_mb()
        started = time.perf_counter()
        status, sent = stream_body(app.url, "/webhooks/fluxapi", args.mb * 1024 * 1024)
        took = time.perf_counter() - started
        after = app.rss_mb()
    print(f"{args.mb} MB streamed (chunked) to /webhooks/fluxapi: HTTP {status} after {took:.2f} s")
    print(f"  sent when the answer arrived: {sent / 1e6:.1f} MB (includes the kernel's socket buffers)")
    print(f"  app RSS: {before:.0f} MB before, {after:.0f} MB after ({after - before:+.1f} MB)")


if __name__ == "__main__":
    main()
