"""A minimal HTTP/1.1 client for bench_api.py: keep-alive read load and SSE chunk timing.

The load generator shares two cores with the server, so it must be cheap: raw keep-alive
sockets, no HTTP library; the read load runs on transport callbacks (``_Connection``).
"""

from __future__ import annotations

import asyncio
import json
import time


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    return status, await reader.readexactly(length)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends a request, reads the whole response (status line, headers,
    Content-Length bytes of body), records the latency, sends the next; until the deadline. A
    response that is not a 200 carrying the bytes expected for its request counts as an error.

    Callbacks on the transport rather than a StreamReader and a coroutine per connection: about
    half the client's CPU per request, which it takes from the same two cores as the server."""

    def __init__(
        self,
        requests: list[tuple[bytes, bytes]],
        offset: int,
        deadline: float,
        latencies: list[float],
        errors: list[str],
        done: asyncio.Future,
    ) -> None:
        self.requests, self.i, self.deadline = requests, offset, deadline
        self.latencies, self.errors, self.done = latencies, errors, done
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.started = 0.0
        self.expected = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        if time.perf_counter() >= self.deadline:
            self.transport.close()
            return
        request, self.expected = self.requests[self.i % len(self.requests)]
        self.i += 1
        self.started = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
        if len(self.buffer) < end + 4 + length:
            return
        self.latencies.append(time.perf_counter() - self.started)
        status = int(lines[0].split()[1])
        if status != 200:
            self.errors.append(str(status))
        elif self.buffer.find(self.expected, end + 4, end + 4 + length) < 0:
            self.errors.append(f"200 without {self.expected!r}")
        del self.buffer[: end + 4 + length]
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self.deadline:
            self.errors.append(f"connection lost: {exc}")
        if not self.done.done():
            self.done.set_result(None)


async def load(
    host: str, port: int, requests: list[tuple[bytes, bytes]], *, connections: int, seconds: float, warmup: float
) -> dict:
    if warmup:
        await load(host, port, requests, connections=connections, seconds=warmup, warmup=0)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds
    dones = [loop.create_future() for _ in range(connections)]
    for n, done in enumerate(dones):
        await loop.create_connection(
            lambda n=n, done=done: _Connection(requests, n * 7, deadline, latencies, errors, done), host, port
        )
    await asyncio.wait_for(asyncio.gather(*dones), timeout=seconds + 60)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "n": len(latencies),
        "errors": len(errors),
    }


def get(path: str, host: str, token: str | None = None) -> bytes:
    auth_line = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth_line}\r\n".encode()


# ------------------------------------------------------------------------------- SSE timing


async def sse_chunk_times(host: str, port: int, request: bytes, event_prefix: bytes) -> list[float]:
    """Seconds from sending the request to each data frame of the stream (chunked body)."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.perf_counter()
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(f"stream request failed: {head[:200]!r} {await reader.read(500)!r}")
    times: list[float] = []
    buffer = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.strip().split(b";")[0], 16)
        if size == 0:
            break
        chunk = await reader.readexactly(size + 2)
        now = time.perf_counter() - started
        buffer += chunk[:-2]
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            if frame.startswith(event_prefix):
                times.append(now)
    writer.close()
    return times


def chunked_post(path: str, host: str, body: dict, headers: dict[str, str]) -> bytes:
    data = json.dumps(body, ensure_ascii=False).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n{extra}Connection: close\r\n\r\n"
    ).encode() + data
