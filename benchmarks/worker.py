"""Child-process entry: ``python -m benchmarks.worker MODULE JSON`` runs ``benchmarks.MODULE.work``.

Each measurement runs in a process of its own so its peak RSS is its own.
Prints one line ``RESULT {json}`` (with ``peak_rss_mb``).
"""

from __future__ import annotations

import importlib
import json
import sys

from benchmarks.common import peak_rss_mb


def main() -> None:
    module, raw = sys.argv[1], sys.argv[2]
    work = importlib.import_module(f"benchmarks.{module}").work
    result = work(json.loads(raw))
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
