"""The code location of W2's floor: the empty asset, as a job the run queue can launch."""

import dagster as dg

from benchmarks.bench_defs import empty_asset

empty_job = dg.define_asset_job("empty_job", selection=[empty_asset])

defs = dg.Definitions(assets=[empty_asset], jobs=[empty_job], executor=dg.in_process_executor)
