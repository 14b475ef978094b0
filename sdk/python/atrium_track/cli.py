"""`atrium-track` command line: `atrium-track sync <dir>...` uploads offline runs.

Exit status: 0 when every run directory was uploaded completely, 1 when one failed (its progress
is kept in its sync.json; run the command again to resume), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys

from .api import ApiClient, ApiError
from .offline import find_run_dirs, sync_run
from .track_api import TrackApi


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atrium-track", description="Atrium experiment tracking")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sync", help="upload offline runs (a run directory or a directory of them)")
    p.add_argument("paths", nargs="+", help="run directories, or directories holding them")
    p.add_argument("--url", default=os.environ.get("ATRIUM_URL"), help="server (default $ATRIUM_URL)")
    p.add_argument("--api-key", default=None, help="API key (default $ATRIUM_API_KEY)")
    p.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)

    api_key = args.api_key or os.environ.get("ATRIUM_API_KEY")
    api = TrackApi(ApiClient(args.url, api_key))
    say = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    failed = 0
    dirs: list[str] = []
    for path in args.paths:
        try:
            found = find_run_dirs(path)
        except FileNotFoundError as e:
            print(f"atrium-track: {e}", file=sys.stderr)
            return 2
        if not found:
            print(f"atrium-track: no offline runs under {path}", file=sys.stderr)
        dirs.extend(found)
    for d in dirs:
        try:
            state = sync_run(api, d, say)
            say(f"{d}: synced run {state.get('run_id')}" + ("" if state.get("finished") else " (not finished)"))
        except (ApiError, ValueError, OSError) as e:
            failed += 1
            print(f"atrium-track: {d}: {e}", file=sys.stderr)
    return 1 if failed else 0
