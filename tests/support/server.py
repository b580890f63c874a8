"""A real loanbilling gRPC server in this process, on its own event loop thread."""

from __future__ import annotations

import asyncio
import faulthandler
import sys
import threading

from sqlalchemy import Engine

from loanbilling.clock import BusinessClock
from loanbilling.config import Settings
from loanbilling.server import App, new_event_loop, start


class ServerThread:
    def __init__(
        self, engine: Engine, clock: BusinessClock, one_statement: bool | None = None, **settings
    ) -> None:
        self.settings = Settings(
            listen="127.0.0.1:0",
            health_interval_s=0.2,
            shutdown_grace_s=1.0,
            sweep_interval_s=0,  # tests sweep when they choose to
            **settings,
        )
        self.engine = engine
        self.clock = clock
        self.one_statement = one_statement
        self.loop = new_event_loop()  # the loop `serve` runs on
        self.app: App | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="grpc-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.app = self.loop.run_until_complete(
                start(
                    self.settings,
                    engine=self.engine,
                    clock=self.clock,
                    one_statement=self.one_statement,
                )
            )
        except BaseException as error:  # surfaced to the test by start()
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    def stop(self, grace: float = 0.5) -> None:
        if self.app is not None:
            stopping = asyncio.run_coroutine_threadsafe(self.app.stop(grace), self.loop)
            try:
                stopping.result(30)
            except TimeoutError:
                # Say where it hangs: every thread's stack and every task's.
                faulthandler.dump_traceback(sys.stderr)
                for task in asyncio.all_tasks(self.loop):
                    task.print_stack(file=sys.stderr)
                raise
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        if not self._thread.is_alive():
            # Its selector and self-pipe: three descriptors a server left open, until
            # the suite ran out of the ones select() can watch.
            self.loop.close()
