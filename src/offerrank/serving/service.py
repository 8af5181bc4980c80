"""The read-only HTTP lookup service (FastAPI): what `offerrank serve` runs with uvicorn.

    GET /v1/rankings/{placement_id}?channel=web&profile=p-1&limit=3&mode=policy&request_id=r-1
    GET /healthz
    GET /docs (OpenAPI)

Answers come from a `RankingLookup` that polls the warehouse for newly published rankings. There is no
authentication yet: an answer leaves out the segment whose list answered (a profile's membership) unless the
`http_show_segment` setting gives it. Malformed input
gets a 4xx with a one-line `error` saying what is wrong; an unexpected failure a 500 without internals.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from offerrank.catalog import CHANNELS, ID_PATTERN
from offerrank.serving.answers import MODES, POLICY, PROFILE_PATTERN, LookupRefused, NothingToServe, UnknownPlacement
from offerrank.serving.lookup import RankingLookup

log = logging.getLogger("offerrank.serving.service")
MAX_LIMIT = 100
REFUSAL_STATUS = {UnknownPlacement: 404, NothingToServe: 503}


def create_app(lookup: RankingLookup, show_segment: bool | None = None) -> FastAPI:
    """The app serving `lookup`; its refresh thread runs while the app does. `show_segment` (default: the lookup's
    `http_show_segment` setting) puts the answering segment in the answers."""
    if show_segment is None:
        show_segment = lookup.settings.http_show_segment

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        lookup.start()
        yield
        lookup.stop()

    app = FastAPI(
        title="offerrank lookups",
        version="1",
        lifespan=lifespan,
        description="Ranked offers per placement and channel, from the latest complete published ranking.",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in error.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    @app.exception_handler(LookupRefused)
    @app.exception_handler(NothingToServe)
    async def refused(_: Request, error: LookupRefused | NothingToServe) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=REFUSAL_STATUS.get(type(error), 400))

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        log.exception("lookup %s failed", request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.get("/v1/rankings/{placement_id}", summary="Ranked offers for a placement on a channel")
    async def rankings(
        placement_id: Annotated[str, Path(pattern=ID_PATTERN, description="placement id")],
        channel: Annotated[str, Query(pattern=f"^({'|'.join(CHANNELS)})$", description="the placement's channel")],
        profile: Annotated[
            str | None,
            Query(
                pattern=PROFILE_PATTERN,
                description="profile id: picks its segment's list on personalized placements; offer audiences",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="how many offers")] = 10,
        mode: Annotated[
            Literal[MODES],  # type: ignore[valid-type]  # a tuple of str literals: FastAPI reads it at run time
            Query(
                description="policy: the order decided for this request (random share, Thompson draw); "
                "published: the fixed published order"
            ),
        ] = POLICY,
        request_id: Annotated[
            str | None, Query(pattern=ID_PATTERN, description="fixes the request's draws: a retry gets the same answer")
        ] = None,
        decision: Annotated[
            str | None, Query(pattern=ID_PATTERN, description="decision id, when several assign the placement")
        ] = None,
        device: Annotated[
            str | None, Query(max_length=100, description="context for contextual models: the device type")
        ] = None,
        hour: Annotated[int | None, Query(ge=0, le=23, description="context: the local hour of the request")] = None,
    ) -> dict:
        context = {key: value for key, value in (("device", device), ("hour", hour)) if value is not None}
        answer = lookup.top(placement_id, channel, profile, limit, mode, request_id, decision, context).as_dict()
        if not show_segment:
            del answer["segment"]  # which segment's list answered tells the caller the profile is in that segment
        return answer

    @app.get(
        "/healthz",
        summary="The serving ranking version, its age and why it is degraded: 200 when ok, 503 when degraded",
    )
    async def healthz() -> JSONResponse:
        health = lookup.health()
        return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)

    return app


def serve(lookup: RankingLookup, host: str, port: int) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(lookup), host=host, port=port, log_level="warning", access_log=False)
