"""A tiny in-memory stand-in for the track API (standard library only), for unit tests.

It implements the run/metric/file/params/finish/heartbeat shapes of docs/track.md loosely and
can inject faults: `fail_next(n, status)` answers the next n metric POSTs with `status`
(0 = drop the connection without an answer). Every request is recorded in `requests`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeTrackServer:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.runs: dict[str, dict] = {}
        self.points: dict[str, dict[tuple[str, int], tuple]] = {}  # run -> (key, step) -> point
        self.batches: list[int] = []  # sizes of accepted metric batches
        self.files: dict[tuple[str, str], bytes] = {}
        self.logs: dict[str, list[dict]] = {}
        self.faults: list[int] = []
        self.api_key = "atr_test"
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("content-length", 0))
                return self.rfile.read(n) if n else b""

            def _reply(self, status: int, obj=None):
                data = json.dumps(obj).encode() if obj is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                body = self._body()
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.requests.append((self.command, path, dict(self.headers)))
                if self.headers.get("authorization") != f"Bearer {server.api_key}":
                    return self._reply(401, {"error": {"code": "unauthenticated", "message": "no key"}})
                parts = path.strip("/").split("/")[2:]  # after api/v1
                if self.command == "POST" and parts == ["runs"]:
                    req = json.loads(body)
                    with server.lock:
                        rid = str(len(server.runs) + 1)
                        run = {"id": rid, "project_id": "1", "name": req.get("name") or f"run-{rid}",
                               "status": "running", "config": req.get("config", {}), "tags": req.get("tags"),
                               "project": req.get("project"), "sweep_id": req.get("sweep_id")}
                        server.runs[rid] = run
                        server.points[rid] = {}
                    return self._reply(201, run)
                if len(parts) >= 2 and parts[0] == "runs" and parts[1] in server.runs:
                    rid = parts[1]
                    rest = parts[2:]
                    if self.command == "POST" and rest == ["metrics"]:
                        with server.lock:
                            fault = server.faults.pop(0) if server.faults else None
                        if fault == 0:
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                        if fault is not None:
                            return self._reply(fault, {"error": {"code": "unavailable", "message": "injected"}})
                        pts = json.loads(body)["points"]
                        with server.lock:
                            for p in pts:
                                server.points[rid][(p["key"], p["step"])] = (p["value"], p.get("timestamp"))
                            server.batches.append(len(pts))
                        return self._reply(200, {"accepted": len(pts)})
                    if self.command == "POST" and rest == ["logs"]:
                        lines = json.loads(body)["lines"]
                        with server.lock:
                            server.logs.setdefault(rid, []).extend(lines)
                        return self._reply(200, {"accepted": len(lines)})
                    if self.command == "POST" and rest == ["heartbeat"]:
                        return self._reply(200, {"id": rid, "status": "running"})
                    if self.command == "PATCH" and not rest:
                        req = json.loads(body)
                        with server.lock:
                            run = server.runs[rid]
                            run["config"].update(req.pop("config", {}))
                            run.update(req)
                        return self._reply(200, run)
                    if self.command == "POST" and rest == ["finish"]:
                        with server.lock:
                            server.runs[rid]["status"] = json.loads(body).get("status", "finished")
                        return self._reply(200, server.runs[rid])
                    if self.command == "PUT" and rest[:1] == ["files"]:
                        name = "/".join(rest[1:])
                        with server.lock:
                            server.files[(rid, name)] = body
                        return self._reply(201, {"path": name, "size": len(body)})
                return self._reply(404, {"error": {"code": "not_found", "message": f"no route {path}"}})

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def fail_next(self, n: int, status: int = 503) -> None:
        with self.lock:
            self.faults.extend([status] * n)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
