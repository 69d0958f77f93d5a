"""Floor 3: the sync service and the missing derivation (no Dagster)."""
