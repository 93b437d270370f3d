"""corpus_app: a tiny FastAPI app whose dependency locks are the test corpus."""
