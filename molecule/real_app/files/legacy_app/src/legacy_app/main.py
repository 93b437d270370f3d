"""GET / tells which versions of the locked dependencies are installed; GET /healthz is the probe."""
from importlib.metadata import version

import netifaces
from fastapi import FastAPI

app = FastAPI(title="legacy_app")


@app.get("/")
def index() -> dict:
    return {
        "app": "legacy_app",
        "uvicorn": version("uvicorn"),
        "docopt": version("docopt"),
        "netifaces": version("netifaces"),
        "interfaces": len(netifaces.interfaces()),
    }


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
