"""Holds many StreamNotifications subscribers open: a process of its own.

`python -m bench.streams TARGET` reads JSON lines on stdin:

  {"op": "open", "subs": [[loan_id, after_sequence], ...], "channels": 10, "timeout_s": 60}
      opens one stream per entry, following that loan's events of every kind
      from after_sequence; answers once every stream has delivered its first
      message (the loan's latest event, replayed), so each is known to be open.
  {"op": "close"}   cancels them all and answers what they received
  {"op": "exit"}
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time

import grpc
from microfin.loanbilling.v1 import (
    events_pb2,
    notification_service_pb2,
    notification_service_pb2_grpc,
)

ALL_KINDS = [k for k in events_pb2.EventKind.values() if k != events_pb2.EVENT_KIND_UNSPECIFIED]


class Subscribers:
    def __init__(self, target: str) -> None:
        self.target = target
        self.channels: list[grpc.aio.Channel] = []
        self.calls: list = []
        self.tasks: list[asyncio.Task] = []
        self.received = 0
        self.ready = 0
        self.errors: collections.Counter = collections.Counter()
        self.all_ready = asyncio.Event()
        self.expected = 0

    async def open(self, subs: list[list[int]], channels: int, timeout_s: float) -> dict:
        started = time.perf_counter()
        self.channels = [grpc.aio.insecure_channel(self.target) for _ in range(max(1, channels))]
        stubs = [notification_service_pb2_grpc.NotificationServiceStub(c) for c in self.channels]
        self.expected = len(subs)
        for i, (loan_id, after) in enumerate(subs):
            call = stubs[i % len(stubs)].StreamNotifications(
                notification_service_pb2.StreamNotificationsRequest(
                    after_sequence=after, loan_id=loan_id, kinds=ALL_KINDS
                )
            )
            self.calls.append(call)
            self.tasks.append(asyncio.create_task(self._follow(call)))
        if not subs:
            self.all_ready.set()
        try:
            await asyncio.wait_for(self.all_ready.wait(), timeout=timeout_s)
        except TimeoutError:
            pass
        return {
            "opened": len(subs),
            "ready": self.ready,
            "open_s": round(time.perf_counter() - started, 3),
            "errors": dict(self.errors),
        }

    async def _follow(self, call) -> None:
        first = True
        try:
            async for _message in call:
                self.received += 1
                if first:
                    first = False
                    self.ready += 1
                    if self.ready == self.expected:
                        self.all_ready.set()
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.errors[error.code().name] += 1
        except asyncio.CancelledError:
            pass

    async def close(self) -> dict:
        for call in self.calls:
            call.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for channel in self.channels:
            await channel.close()
        return {"received": self.received, "errors": dict(self.errors)}


async def serve(target: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    subscribers = Subscribers(target)
    while True:
        line = await reader.readline()
        if not line:
            return
        command = json.loads(line)
        op = command["op"]
        if op == "open":
            answer = await subscribers.open(
                command["subs"], command.get("channels", 10), command.get("timeout_s", 60)
            )
        elif op == "close":
            answer = await subscribers.close()
            subscribers = Subscribers(target)
        else:
            await subscribers.close()
            return
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
