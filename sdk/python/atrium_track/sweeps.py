"""Sweeps: `sweep()` registers a hyper-parameter search; `agent()` runs suggestions of it.

The server owns the search (grid, random, bayes/TPE, run cap, Hyperband; docs/track.md
"Sweeps"). An agent loops: ask `POST /sweeps/{id}/suggest` for parameters, start a run that joins
the sweep (`sweep_id`, `suggestion_id`, `config` = the parameters), call the training function,
finish the run (`failed` when the function raised; the agent goes on with the next suggestion),
until the sweep is done, `count` runs were made, or — for a paused sweep — never: a paused sweep
is polled every `poll_interval` seconds until it resumes or finishes.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Callable, Mapping

from .api import ApiClient, ApiError
from .run import Run, Settings
from .track_api import TrackApi

log = logging.getLogger("atrium_track")


def _api(settings: Settings | None, url: str | None, api_key: str | None) -> tuple[TrackApi, Settings]:
    s = (settings or Settings()).resolved()
    s.url = url or s.url
    s.api_key = api_key or s.api_key
    return TrackApi(ApiClient(s.url, s.api_key), deadline=s.request_deadline), s


def sweep(
    config: Mapping[str, Any],
    project: str | None = None,
    *,
    name: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Creates a sweep in `project` (created if missing; default $ATRIUM_PROJECT) and returns its
    id. `config` is the W&B-style sweep config: method, metric, parameters, run_cap, …"""
    import os

    project = project or os.environ.get("ATRIUM_PROJECT")
    if not project:
        raise ValueError("sweep: project is required (argument or ATRIUM_PROJECT)")
    api, _ = _api(settings, url, api_key)
    proj = api.ensure_project(project)
    return str(api.create_sweep(proj["id"], dict(config), name)["id"])


def agent(
    sweep_id: str,
    function: Callable[..., Any],
    count: int | None = None,
    *,
    project: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    settings: Settings | None = None,
    poll_interval: float = 5.0,
) -> list[Run]:
    """Runs `function` for suggestions of sweep `sweep_id` until the sweep is done or `count` runs
    were made; returns the finished runs. `function` takes the `Run` as its only argument, or no
    argument (then it reads `atrium_track.run` / `atrium_track.config`). Runs are created online
    (the server must suggest); its project is the sweep's."""
    from . import _set_current  # the module-level `run` / `config`

    api, s = _api(settings, url, api_key)
    info = api.get_sweep(sweep_id)
    project_id = str(info["project_id"])
    project = project or _project_name(api, project_id)
    takes_run = _takes_argument(function)
    runs: list[Run] = []
    while count is None or len(runs) < count:
        try:
            sug = api.suggest(sweep_id)
        except ApiError as e:
            if e.status == 409:  # paused
                time.sleep(poll_interval)
                continue
            raise
        if sug.get("done"):
            log.info("atrium_track: sweep %s done (%s)", sweep_id, sug.get("reason"))
            break
        params = sug.get("params", {})
        run = Run(
            project,
            config=params,
            sweep_id=sweep_id,
            suggestion_id=sug.get("suggestion_id"),
            settings=s,
        )
        _set_current(run)
        status = "finished"
        try:
            function(run) if takes_run else function()
        except KeyboardInterrupt:
            run.finish("killed")
            _set_current(None)
            raise
        except Exception:  # noqa: BLE001 - one failed trial does not end the sweep
            log.exception("atrium_track: sweep run %s failed", run.id)
            status = "failed"
        run.finish(status)
        _set_current(None)
        runs.append(run)
    return runs


def _project_name(api: TrackApi, project_id: str) -> str:
    return api.client.request_with_retry("GET", f"/projects/{project_id}")["name"]


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params
    ) or any(p.kind == p.VAR_POSITIONAL for p in params)
