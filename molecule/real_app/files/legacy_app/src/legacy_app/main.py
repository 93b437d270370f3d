"""GET / tells which versions of the locked dependencies are installed; GET /healthz is the probe."""
import socket
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
        # A constant of the compiled module: netifaces.interfaces() would need AF_NETLINK, which
        # the service's sandbox (RestrictAddressFamilies) does not allow.
        "af_inet": netifaces.AF_INET == socket.AF_INET,
    }


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
