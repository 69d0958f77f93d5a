"""Floor 2: SQLAlchemy schema, Alembic migrations and the inventory store.

``make_engine`` (engine.py), ``upgrade_to_head`` / ``assert_at_head`` (migrate.py),
``InventoryStore`` and its records (store.py, records.py). Imports only ``inventory/``.
"""
