"""atrium_track: Python SDK of Atrium's experiment tracking (services/track).

    import atrium_track
    with atrium_track.init(project="mnist", config={"lr": 1e-3}) as run:
        for step in range(100):
            run.log({"loss": 1 / (step + 1)})

Standard library only. Server and key from `url=` / `api_key=` or `ATRIUM_URL` /
`ATRIUM_API_KEY` (sent as `Authorization: Bearer ...`). See sdk/python/README.md.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from .api import ApiClient, ApiError
from .run import Run, Settings
from .sweeps import agent, sweep
from .track_api import TrackApi

__all__ = [
    "ApiClient",
    "ApiError",
    "Run",
    "Settings",
    "TrackApi",
    "agent",
    "config",
    "finish",
    "init",
    "log",
    "run",
    "sweep",
]
__version__ = "0.1.0"

# The run started last by init() (or by agent() for the function it calls), like wandb.run;
# None when there is none. `config` is that run's config.
run: Run | None = None
config: dict[str, Any] = {}


def _set_current(r: Run | None) -> None:
    global run, config
    run = r
    config = r.config if r is not None else {}


def init(
    project: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,  # noqa: F811 - the seed's parameter name
    tags: list[str] | Mapping[str, str] | None = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    dir: str | None = None,  # noqa: A002 - root of offline runs
    settings: Settings | None = None,
    **overrides: Any,
) -> Run:
    """Starts a run in `project` (created if missing; default $ATRIUM_PROJECT) and returns it.

    `mode`: "online" (default, or $ATRIUM_MODE) talks to the server; "offline" writes a local run
    directory under `dir` (default ./atrium-track or $ATRIUM_DIR) for `atrium-track sync`.
    Keyword `overrides` set `Settings` fields (flush_interval, system_interval, ...).
    Online, raises ApiError when the server cannot create the run within the retry deadline.
    """
    s = settings or Settings()
    changes: dict[str, Any] = dict(overrides)
    if mode is not None:
        changes["mode"] = mode
    if url is not None:
        changes["url"] = url
    if api_key is not None:
        changes["api_key"] = api_key
    if dir is not None:
        changes["dir"] = dir
    if changes:
        import dataclasses

        s = dataclasses.replace(s, **changes)
    r = Run(
        project or os.environ.get("ATRIUM_PROJECT", ""),
        name=name,
        config=config,
        tags=list(tags) if isinstance(tags, (list, tuple)) else tags,
        notes=notes,
        group=group,
        job_type=job_type,
        settings=s,
    )
    _set_current(r)
    return r


def log(values: Mapping[str, Any], step: int | None = None) -> None:
    """`run.log()` on the current run."""
    if run is None:
        raise RuntimeError("atrium_track.log: call atrium_track.init() first")
    run.log(values, step=step)


def finish(status: str = "finished") -> None:
    """Finishes the current run."""
    if run is not None:
        run.finish(status)
        _set_current(None)
