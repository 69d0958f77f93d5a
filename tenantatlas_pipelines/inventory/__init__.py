"""Floor 1: the domain. Imports nothing else of the project and never Dagster."""
