"""The web portal: skiff's own pages for looking around and acting, on the API's listener.

A person signs in with a skiff token and sees the container groups of every
subscription it may see, a group's state, events, containers, logs (followed live) and
definition, and stops, starts, restarts or deletes it. The pages are made on the
server (:mod:`skiff.portal.routes`) from the API's answers to that person's token, asked
in process (:mod:`skiff.portal.arm`): the portal holds no authority of its own. Its
styles and scripts are files of this package, served by skiff (the node needs no
internet); docs/PORTAL.md says why it is built this way.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from skiff.portal import console, storage, subscriptions
from skiff.portal.routes import ROOT, NotSignedIn, router, to_sign_in
from skiff.portal.sessions import Sessions

__all__ = ["ROOT", "mount"]


def mount(app: FastAPI, sessions: Sessions | None = None) -> FastAPI:
    """Serve the portal on ``app`` (the API's) under ``/portal``."""
    app.state.portal_sessions = sessions or Sessions()
    app.include_router(router)
    app.include_router(console.router)
    app.include_router(storage.router)
    app.include_router(subscriptions.router)
    app.add_exception_handler(NotSignedIn, to_sign_in)
    app.mount(f"{ROOT}/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="portal-static")
    return app
