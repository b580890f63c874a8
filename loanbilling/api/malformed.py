"""Requests whose bytes do not parse answer INVALID_ARGUMENT, not UNKNOWN.

grpcio decodes a request before any servicer code runs and answers UNKNOWN
when that fails. `add_tolerant` registers a service with deserializers that
hand the servicer a `Malformed` marker instead, which `api.errors.unary`
refuses. It costs nothing per call beyond a try block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError


@dataclass(frozen=True)
class Malformed:
    reason: str


def _tolerant(decode: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def tolerant(data: bytes) -> object:
        try:
            return decode(data)
        except DecodeError as error:
            return Malformed(str(error))

    return tolerant


class _Capture:
    """Stands in for the server while the generated add_*_to_server registers handlers."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, dict[str, grpc.RpcMethodHandler]]] = []

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass  # rebuilt from the registered handlers below

    def add_registered_method_handlers(self, service_name, method_handlers) -> None:
        self.registered.append((service_name, method_handlers))


def add_tolerant(add_to_server, servicer, server: grpc.aio.Server) -> None:
    """Like the generated add_XServicer_to_server(servicer, server), with tolerant decoding."""
    capture = _Capture()
    add_to_server(servicer, capture)
    for service_name, handlers in capture.registered:
        tolerant = {
            name: handler._replace(request_deserializer=_tolerant(handler.request_deserializer))
            for name, handler in handlers.items()
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_name, tolerant),)
        )
        server.add_registered_method_handlers(service_name, tolerant)
