"""What every RPC goes through on its way in and out, in one wrapper per method:
request id, authentication and role, a default deadline, the mapping of every
failure to a precise status, metrics and the log line. Health and reflection
are not wrapped: they stay open.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from loanbilling.api import metrics
from loanbilling.api.auth import Role, TokenTable
from loanbilling.api.errors import status_for, status_of
from loanbilling.api.malformed import Malformed
from loanbilling.domain.errors import DomainError, InvalidArgument
from loanbilling.logs import request_id

log = logging.getLogger("loanbilling.rpc")
REQUEST_ID_HEADER = "x-request-id"


class Edge:
    """Per-server settings of the wrapper: who may call, and how long by default."""

    def __init__(
        self, tokens: TokenTable | None = None, *, default_deadline_s: float = 30.0
    ) -> None:
        self.tokens = tokens
        self.default_deadline_s = default_deadline_s

    def replace_tokens(self, tokens: TokenTable) -> None:
        """Swaps the token table (a reload on SIGHUP): one assignment, so every call
        sees the old table or the new one whole. Calls already admitted go on."""
        self.tokens = tokens

    def refusal(self, metadata: dict[str, str], needed: Role) -> grpc.Status | None:
        """None when the caller may call; else UNAUTHENTICATED or PERMISSION_DENIED."""
        tokens = self.tokens  # read once: a reload may swap it meanwhile
        if tokens is None:
            return None
        scheme, _, token = metadata.get("authorization", "").partition(" ")
        credential = tokens.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if credential is None:
            return _status(
                code_pb2.UNAUTHENTICATED,
                "a valid bearer token is required: send metadata 'authorization: Bearer <token>'",
            )
        if credential.role < needed:
            return _status(
                code_pb2.PERMISSION_DENIED,
                f"{credential.name} has role {credential.role.name.lower()}; this call needs "
                f"{needed.name.lower()}",
            )
        return None


OPEN = Edge()


def _status(code: int, message: str) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code, message=message))


class _Status(
    collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status
):
    """grpc.Status is abstract; grpcio-status builds its statuses the same way."""


def _with_request_id(status: grpc.Status, rid: str) -> grpc.Status:
    """The status with the request id added to its trailing metadata."""
    return _Status(
        status.code, status.details, (*(status.trailing_metadata or ()), (REQUEST_ID_HEADER, rid))
    )


class _Call:
    """One call's bookkeeping: request id, timing, outcome."""

    __slots__ = ("method", "rid", "token", "started", "code", "reason", "metadata")

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.started = time.perf_counter()
        metadata = dict(context.invocation_metadata() or ())
        self.rid = metadata.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        self.token = request_id.set(self.rid)
        self.code = "OK"
        self.reason = ""
        self.metadata = metadata

    def failed(self, error: Exception) -> grpc.Status:
        status = status_of(self.method, error)
        self.code = status.code.name
        self.reason = error.reason if isinstance(error, DomainError) else self.code
        return _with_request_id(status, self.rid)

    async def admit(
        self, edge: Edge, role: Role, request, context: grpc.aio.ServicerContext
    ) -> None:
        """Aborts the call unless the caller may make it and the request parsed."""
        if (refusal := edge.refusal(self.metadata, role)) is not None:
            await context.abort_with_status(self.refused(refusal))
        if isinstance(request, Malformed):
            await context.abort_with_status(
                _with_request_id(status_for(_malformed(request)), self.rid)
            )

    def aborted(self, context: grpc.aio.ServicerContext) -> None:
        """The handler aborted by itself: take the code it chose."""
        if self.code == "OK":
            code = context.code()
            self.code = self.reason = code.name if code is not None else "ABORTED"

    def refused(self, status: grpc.Status) -> grpc.Status:
        self.code = self.reason = status.code.name
        return _with_request_id(status, self.rid)

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.started
        metrics.RPC_REQUESTS.labels(self.method, self.code).inc()
        metrics.RPC_DURATION.labels(self.method).observe(elapsed)
        if self.method == "MakePayment":
            metrics.PAYMENTS.labels("accepted" if self.code == "OK" else self.reason).inc()
        if self.code == "OK":
            log.debug("%s OK in %.1f ms", self.method, elapsed * 1000)
        else:
            log.info("%s %s (%s) in %.1f ms", self.method, self.code, self.reason, elapsed * 1000)
        try:
            request_id.reset(self.token)
        except ValueError:
            pass  # a stream closed from another task: the context it set is gone with it


def _malformed(request: Malformed) -> InvalidArgument:
    error = InvalidArgument.of("request", f"is not a valid protobuf message ({request.reason})")
    error.reason = "MALFORMED_REQUEST"
    return error


def unary(role: Role) -> Callable[[Callable[..., Awaitable]], Callable[..., Awaitable]]:
    """Wraps a unary servicer method that needs `role`."""

    def decorate(handler: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
        method = handler.__name__

        @functools.wraps(handler)
        async def wrapper(self, request, context: grpc.aio.ServicerContext):
            call = _Call(method, context)
            try:
                await call.admit(self.edge, role, request, context)
                try:
                    if context.time_remaining() is None:  # the client set no deadline
                        async with asyncio.timeout(self.edge.default_deadline_s):
                            response = await handler(self, request, context)
                    else:
                        response = await handler(self, request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as error:  # noqa: BLE001 - the edge answers every failure
                    await context.abort_with_status(call.failed(error))
                context.set_trailing_metadata(((REQUEST_ID_HEADER, call.rid),))
                return response
            except grpc.aio.AbortError:
                call.aborted(context)
                raise
            finally:
                call.finish()

        wrapper.required_role = role
        return wrapper

    return decorate


def streaming(role: Role) -> Callable[[Callable[..., AsyncIterator]], Callable[..., AsyncIterator]]:
    """Wraps a server-streaming method like `unary` does a unary one; no default
    deadline (streams are long by design). Client cancellation passes through."""

    def decorate(handler: Callable[..., AsyncIterator]) -> Callable[..., AsyncIterator]:
        method = handler.__name__

        @functools.wraps(handler)
        async def wrapper(self, request, context: grpc.aio.ServicerContext):
            call = _Call(method, context)
            try:
                await call.admit(self.edge, role, request, context)
                await context.send_initial_metadata(((REQUEST_ID_HEADER, call.rid),))
                try:
                    async for item in handler(self, request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as error:  # noqa: BLE001 - the edge answers every failure
                    await context.abort_with_status(call.failed(error))
            except grpc.aio.AbortError:
                call.aborted(context)
                raise
            except asyncio.CancelledError:
                call.code = call.reason = "CANCELLED"
                raise
            finally:
                call.finish()

        wrapper.required_role = role
        return wrapper

    return decorate
