"""One encoded WebSocket frame written to many connections: the realtime fan-out's fast path.

A realtime message goes unchanged to every subscriber of its site. Sent through ASGI, each copy
takes a hop through the subscriber's queue and task, Starlette's ``send``, uvicorn's protocol and
websockets' frame serializer, once per connection. Server frames are never masked (RFC 6455
5.1), so a text frame's bytes are the same for every connection: the hub encodes each message
once (:func:`text_frame`, websockets' own serializer) and writes those bytes to each
subscriber's transport (docs/benchmarks.md, "Realtime", for what it saves).

:class:`FrameWriterProtocol` is uvicorn's sans-I/O WebSocket protocol, extended only to hand its
open connection to the app as the ASGI scope extension ``zqyy.frame_writer``; the API is served
with it (``--ws api.ws_frames:FrameWriterProtocol``, api/serving.py). Under another server, or
Starlette's test client, the extension is absent and the realtime route sends through ASGI.
Everything else (handshake, pings, close) stays uvicorn's; every write is a whole frame on the
event loop's thread, so frames never interleave.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

FRAME_WRITER = "zqyy.frame_writer"


def text_frame(text: str) -> bytes:
    """A final, unmasked text frame carrying ``text`` (what a server sends, to any client)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class FrameWriter:
    """Raw writes of encoded frames to one accepted connection."""

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    @property
    def open(self) -> bool:
        """False once either side started closing: no data frame may follow a close frame."""
        return not (self._protocol.close_sent or self._protocol.transport.is_closing())

    def unsent_bytes(self) -> int:
        """Bytes written but not yet taken by the kernel: grows while the client reads too slowly."""
        return self._protocol.transport.get_write_buffer_size()

    def write(self, frame: bytes) -> bool:
        """Queue ``frame`` on the connection; False (nothing written) once it is closing."""
        if not self.open:
            return False
        self._protocol.transport.write(frame)
        return True


class FrameWriterProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that offers a :class:`FrameWriter` in the ASGI scope."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # the handshake was accepted and the app's task is about to start
            self.scope["extensions"][FRAME_WRITER] = FrameWriter(self)  # type: ignore[assignment]


def frame_writer(scope: Any) -> FrameWriter | None:
    """The connection's frame writer when the server offers one."""
    extensions = scope.get("extensions") or {}
    writer = extensions.get(FRAME_WRITER)
    return writer if isinstance(writer, FrameWriter) else None
