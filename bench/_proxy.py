"""A small asyncio TCP proxy between the agents and Redis that can break the network on demand.

    proxy = FaultyProxy(upstream_port).start()      # its own event loop in a daemon thread
    redis_url = proxy.url
    proxy.drop()        # close every connection (FIN both ways)
    proxy.reset()       # abort every connection with a RST (SO_LINGER 0)
    proxy.stall(3.0)    # hold every byte, both ways, for 3 s (new connections too), then go on

Each client connection gets its own upstream connection; when either side closes, so does
the other. A stall is a partition that heals: bytes sent meanwhile are delivered afterwards,
possibly after the client gave up on them (an XADD that lands twice is the collector's to absorb).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any

CHUNK = 1 << 16


class FaultyProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="soak-proxy", daemon=True)
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "FaultyProxy":
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- faults, called from any thread ----------------------------------------------------------
    def drop(self) -> int:
        """Close every open connection gracefully; returns how many pairs were closed."""
        return self._call(self._close_all(abort=False))

    def reset(self) -> int:
        """Abort every open connection with a TCP RST."""
        return self._call(self._close_all(abort=True))

    def stall(self, seconds: float) -> None:
        """Hold all traffic for ``seconds`` (returns at once)."""
        self._call(self._stall(seconds))

    def heal(self) -> None:
        self._call(self._heal())

    # -- the loop ---------------------------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._close_all(abort=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.connections += 1
        await self._flowing.wait()  # a partition: the connect "succeeds", nothing gets through
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _close_all(self, abort: bool) -> int:
        pairs = list(self._pairs)
        for pair in pairs:
            for w in pair:
                if abort:
                    sock = w.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    w.transport.abort()
                else:
                    w.close()
        return len(pairs)

    async def _stall(self, seconds: float) -> None:
        assert self._flowing is not None
        self._flowing.clear()
        self._loop.call_later(seconds, self._flowing.set)

    async def _heal(self) -> None:
        assert self._flowing is not None
        self._flowing.set()
