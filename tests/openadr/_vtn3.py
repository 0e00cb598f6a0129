"""A minimal OpenADR 3 VTN built from the specification's endpoints (3.0.1), for the tests.

FastAPI on uvicorn, in the test's event loop, on a free port: ``/auth/token`` (client
credentials), ``GET /programs``, ``GET /events`` (``programID``, ``skip``, ``limit`` <= 50),
``POST /reports`` (validated by its own models of the schema, not the VEN's) and bearer
authentication on each. The test edits ``programs`` and ``events`` directly, as the
utility's business logic would; ``up = False`` answers 503 to everything (a VTN away).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Annotated, Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

OBJECT_ID = r"^[a-zA-Z0-9_-]*$"
Auth = Annotated[str | None, Header()]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValuesMapIn(_Strict):
    type: str = Field(min_length=1, max_length=128)
    values: list[float | int | str | bool]


class IntervalPeriodIn(_Strict):
    start: str
    duration: str | None = None
    randomizeStart: str | None = None  # noqa: N815


class IntervalIn(_Strict):
    id: int
    intervalPeriod: IntervalPeriodIn | None = None  # noqa: N815
    payloads: list[ValuesMapIn]


class ResourceIn(_Strict):
    resourceName: str = Field(min_length=1, max_length=128)  # noqa: N815
    intervalPeriod: IntervalPeriodIn | None = None  # noqa: N815
    intervals: list[IntervalIn]


class DescriptorIn(_Strict):
    objectType: str | None = None  # noqa: N815
    payloadType: str = Field(min_length=1, max_length=128)  # noqa: N815
    readingType: str | None = None  # noqa: N815
    units: str | None = None
    accuracy: float | None = None
    confidence: int | None = Field(None, ge=0, le=100)


class ReportIn(_Strict):
    programID: str = Field(pattern=OBJECT_ID, min_length=1, max_length=128)  # noqa: N815
    eventID: str = Field(pattern=OBJECT_ID, min_length=1, max_length=128)  # noqa: N815
    clientName: str = Field(min_length=1, max_length=128)  # noqa: N815
    reportName: str | None = None  # noqa: N815
    payloadDescriptors: list[DescriptorIn] | None = None  # noqa: N815
    resources: list[ResourceIn]


class Vtn3:
    """The VTN's state (programs, events, reports) and its app."""

    def __init__(self, port: int, client_id: str = "ven-1", secret: str = "s3cret") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/openadr3/3.0.1"
        self.credentials = (client_id, secret)
        self.tokens: set[str] = set()
        self.programs: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.event_gets = 0
        self.up = True
        self.refuse_reports = False  # answer 400 to every report
        self.app = self._app()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def _auth(self, authorization: str | None) -> None:
        if not self.up:
            raise HTTPException(503, "the VTN is down for maintenance")
        token = (authorization or "").removeprefix("Bearer ")
        if token not in self.tokens:
            raise HTTPException(403, "unknown bearer token")

    def _app(self) -> FastAPI:
        app = FastAPI()
        prefix = "/openadr3/3.0.1"

        @app.post(prefix + "/auth/token")
        async def token(request: Request) -> dict[str, Any]:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            if (
                form.get("grant_type") != "client_credentials"
                or (
                    form.get("client_id"),
                    form.get("client_secret"),
                )
                != self.credentials
            ):
                raise HTTPException(400, "invalid_client")
            t = secrets.token_hex(8)
            self.tokens.add(t)
            return {"access_token": t, "token_type": "Bearer", "expires_in": 3600}

        @app.get(prefix + "/programs")
        async def programs(
            authorization: Auth = None,
            skip: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=0, le=50)] = 50,
        ) -> list[dict[str, Any]]:
            self._auth(authorization)
            return self.programs[skip : skip + limit]

        @app.get(prefix + "/events")
        async def events(
            authorization: Auth = None,
            programID: str | None = None,  # noqa: N803
            skip: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=0, le=50)] = 50,
        ) -> list[dict[str, Any]]:
            self._auth(authorization)
            self.event_gets += 1
            found = [e for e in self.events if programID is None or e["programID"] == programID]
            return found[skip : skip + limit]

        @app.post(prefix + "/reports", status_code=201)
        async def reports(body: ReportIn, authorization: Auth = None) -> dict[str, Any]:
            self._auth(authorization)
            if self.refuse_reports or body.eventID not in {e["id"] for e in self.events}:
                raise HTTPException(400, f"no event {body.eventID}")
            stored = {
                "id": f"report-{len(self.reports)}",
                "objectType": "REPORT",
                **body.model_dump(exclude_none=True),
            }
            self.reports.append(stored)
            return stored

        return app

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
