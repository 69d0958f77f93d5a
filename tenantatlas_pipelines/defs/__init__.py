"""Floor 4: the Dagster objects, one small module per kind."""
