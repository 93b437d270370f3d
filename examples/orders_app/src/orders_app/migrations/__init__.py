"""Alembic migrations, shipped inside the package (alembic.ini: script_location = orders_app:migrations)."""
