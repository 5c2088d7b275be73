"""How the API is served: the uvicorn options every launcher passes (the demo, the benchmarks and
the process tests), so that what is measured is what runs.

``--ws-per-message-deflate false``: a realtime message is one small JSON envelope (200-400 bytes),
sent once per subscriber. With permessage-deflate each connection keeps its own zlib context
(about 300 KB) and compresses every frame again: ~40 % of the fan-out's CPU per frame on this
machine (45 -> 28 µs, see docs/benchmarks.md) for a few hundred bytes saved. Clients that offer
the extension simply get uncompressed frames; nothing changes for them.

``--ws api.ws_frames:FrameWriterProtocol``: uvicorn's own sans-I/O WebSocket protocol that also
lets the realtime hub write each message's one encoded frame to every subscriber's connection
(api/ws_frames.py).
"""

from __future__ import annotations

from typing import Any

FRAME_WRITER_PROTOCOL = "api.ws_frames:FrameWriterProtocol"
# The same settings as uvicorn's command line takes them, and as uvicorn.Config does (an API
# served in a test's thread).
UVICORN_OPTIONS: tuple[str, ...] = ("--ws", FRAME_WRITER_PROTOCOL, "--ws-per-message-deflate", "false")
UVICORN_SETTINGS: dict[str, Any] = {"ws": FRAME_WRITER_PROTOCOL, "ws_per_message_deflate": False}
