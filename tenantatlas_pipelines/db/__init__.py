"""Floor 2: SQLAlchemy schema, Alembic migrations and the inventory store."""
