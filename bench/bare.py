"""The bare loop the tap is compared with: the same GETs, one `requests.Session`, `json`, one thread.

`python -m bench.bare URLS_FILE` reads one URL a line, fetches each in turn with the bearer key from
`BENCH_API_KEY`, parses the body with `json`, writes every item of the page's list as a JSON line to
/dev/null, and prints a one-line JSON summary (requests, records, loop seconds).
"""

from __future__ import annotations

import json
import os
import sys
import time

import requests


def main(argv: list[str]) -> int:
    """Run the loop over the URLs in the file named by argv[0]."""
    with open(argv[0], encoding="utf-8") as handle:
        urls = handle.read().split()
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {os.environ['BENCH_API_KEY']}"})
    session.headers.update({"Accept": "application/json"})
    records = 0
    started, cpu = time.perf_counter(), time.process_time()
    with open(os.devnull, "w", encoding="utf-8") as out:
        for url in urls:
            response = session.get(url, timeout=60)
            response.raise_for_status()
            payload = json.loads(response.content)
            items = next(value for value in payload.values() if isinstance(value, list))
            for item in items:
                out.write(json.dumps(item) + "\n")
            records += len(items)
    summary = {
        "requests": len(urls),
        "records": records,
        "loop_wall": time.perf_counter() - started,
        "loop_cpu": time.process_time() - cpu,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
