"""Performance benchmarks of the sync against the machine's own limits (`make bench`).

Not tests and never run in CI: `python -m benchmarks.run [--quick]` prints a
summary table of ratios with PASS/FAIL against the targets of issue 5.
"""
