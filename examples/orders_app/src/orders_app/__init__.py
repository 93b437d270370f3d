"""Example FastAPI app with PostgreSQL, alembic migrations, a job worker and a scheduled report."""
