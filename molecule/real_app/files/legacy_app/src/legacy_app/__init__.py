"""legacy_app: a tiny FastAPI app locked with Poetry."""
