"""TenantAtlas pipelines: the Intune inventory pipeline on Dagster."""
