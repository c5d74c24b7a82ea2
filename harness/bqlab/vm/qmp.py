"""A synchronous face on qemu.qmp's asyncio QMPClient.

The client runs in its own event-loop thread, so QMP events are logged as they arrive
(SHUTDOWN, GUEST_PANICKED, NIC_RX_FILTER_CHANGED ...) while the harness code stays plain
blocking Python.
"""

import asyncio
import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient, QMPError

from ..errors import InfraError

# qemu.qmp logs every refused connect while QEMU starts; connect() reports real failures.
logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


class Qmp:
    def __init__(self, name: str, socket_path: Path, event_log: Path):
        self.name = name
        self.socket_path = socket_path
        self.event_log = event_log
        self.events: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"qmp-{name}")
        self._thread.start()
        self._client = QMPClient(name)
        self._event_task = None

    def _run(self, coro, timeout: float):
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError as e:
            fut.cancel()
            raise InfraError(f"{self.name}: QMP call timed out after {timeout}s") from e
        except (QMPError, OSError, EOFError) as e:
            # QEMU went away under the call (a guest panic with -no-reboot, a crash):
            # an error the runner judges, not a harness bug.
            raise InfraError(f"{self.name}: QMP failed: {type(e).__name__}: {e}") from e

    async def _pump_events(self) -> None:
        with self.event_log.open("a") as log:
            async for event in self._client.events:
                record = {"ts": time.time(), **dict(event)}
                self.events.append(record)
                log.write(json.dumps(record) + "\n")
                log.flush()

    async def _connect(self) -> None:
        await self._client.connect(str(self.socket_path))
        self._event_task = asyncio.ensure_future(self._pump_events())

    def connect(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._run(self._connect(), timeout)
                return
            except Exception as e:  # socket not there yet, or refused
                if time.monotonic() > deadline:
                    raise InfraError(f"{self.name}: cannot connect QMP at "
                                     f"{self.socket_path}: {e}") from e
                time.sleep(0.05)

    def cmd(self, command: str, timeout: float = 10.0, **args: Any) -> Any:
        return self._run(self._client.execute(command, args or None), timeout)

    def close(self) -> None:
        async def _close() -> None:
            if self._event_task:
                self._event_task.cancel()
            await self._client.disconnect()

        # The QEMU side may be gone already: then there is nothing to close politely.
        with contextlib.suppress(Exception):
            self._run(_close(), 5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2.0)
