#!/usr/bin/env python3
"""Holds N streaming Messages requests open through the relay at once and reports the relay's
memory while they are all open (the issue's "RSS <= 64 MiB with 1,000 concurrent open streams").

It serves the upstream itself: an Anthropic-shaped SSE endpoint that sends message_start and the
first delta at once, then a ping every second, and ends the message after --hold seconds. The
clients are raw asyncio sockets (one connection per stream).

Usage: open_streams.py --relay URL --key KEY --model MODEL --upstream-port PORT --pid PID
                       [--streams 1000] [--hold 20]
The account for MODEL must point at http://127.0.0.1:PORT (bench/relay/run sets it up).
Prints one line: "streams_open N of M rss_mib R peak_rss_mib P baseline_rss_mib B".
"""
import argparse
import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlparse


def rss_mib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def sse(event, data):
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def upstream(reader, writer, hold):
    try:
        # Request head and body (Content-Length).
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"cache-control: no-cache\r\nconnection: close\r\n\r\n")
        writer.write(sse("message_start", {"type": "message_start", "message": {
            "id": "msg_open", "type": "message", "role": "assistant", "model": "claude-open",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}))
        writer.write(sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                 "content_block": {"type": "text", "text": ""}}))
        writer.write(sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": "Hi"}}))
        await writer.drain()
        end = time.monotonic() + hold
        while time.monotonic() < end:
            await asyncio.sleep(1)
            writer.write(sse("ping", {"type": "ping"}))
            await writer.drain()
        writer.write(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        writer.write(sse("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 2}}))
        writer.write(sse("message_stop", {"type": "message_stop"}))
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def client(host, port, key, model, opened, done):
    body = json.dumps({"model": model, "max_tokens": 16, "stream": True,
                       "messages": [{"role": "user", "content": "Hi"}]}).encode()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\n"
                     + f"x-api-key: {key}\r\nanthropic-version: 2023-06-01\r\n".encode()
                     + f"content-length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        first = await reader.read(4096)  # the first events: the stream is open end to end
        if head.startswith(b"HTTP/1.1 200") and first:
            opened.append(1)
        await done.wait()
        writer.close()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=20)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = await asyncio.start_server(lambda r, w: upstream(r, w, a.hold), "127.0.0.1",
                                        a.upstream_port, backlog=4096)
    url = urlparse(a.relay)
    baseline = rss_mib(a.pid)
    opened, done = [], asyncio.Event()
    tasks = []
    for i in range(a.streams):
        tasks.append(asyncio.create_task(client(url.hostname, url.port, a.key, a.model, opened,
                                                done)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not overrun the listen backlog
    deadline = time.monotonic() + a.hold * 0.75
    while len(opened) < a.streams and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    rss = rss_mib(a.pid)
    peak = rss_mib(a.pid, "VmHWM")
    print(f"streams_open {len(opened)} of {a.streams} rss_mib {rss:.1f} peak_rss_mib {peak:.1f} "
          f"baseline_rss_mib {baseline:.1f}")
    sys.stdout.flush()
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
