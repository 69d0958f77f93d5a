"""How many partitions a Dagster run carries, and how many of them sync at once.

``TENANTATLAS_BATCH_SIZE`` (read when the definitions load) is the ``BackfillPolicy``
bound: a backfill, the nightly sweep and first syncs put at most that many partitions in
one run. The run config ``max_concurrent_partitions`` bounds the syncs running at once
inside a run (each bounded in Graph requests in flight by its tenant's budget).
"""

from __future__ import annotations

import dagster as dg

from tenantatlas_pipelines.inventory.settings import positive_setting
from tenantatlas_pipelines.sync.batch import DEFAULT_MAX_CONCURRENT_PARTITIONS, BatchSettings

BATCH_SIZE_ENV = "TENANTATLAS_BATCH_SIZE"
# measured at W3 (1,000 partitions): Dagster's floor 0.21 / 0.15 / 0.12 s a partition at 25 / 50 / 100
# per run, and a batch run's memory does not grow with it (benchmarks/README.md, the fleet sweep)
DEFAULT_BATCH_SIZE = 100


def batch_size() -> int:
    return int(positive_setting(BATCH_SIZE_ENV, DEFAULT_BATCH_SIZE, "partitions per run", whole=True))


class BatchConfig(dg.Config):  # type: ignore[misc]
    max_concurrent_partitions: int = DEFAULT_MAX_CONCURRENT_PARTITIONS

    def settings(self) -> BatchSettings:
        return BatchSettings(max_concurrent_partitions=self.max_concurrent_partitions)
