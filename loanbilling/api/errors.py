"""Maps refusals and failures to gRPC statuses with google.rpc details.

Domain refusals keep their message (written for the person reading it); a
database that cannot be reached answers UNAVAILABLE so clients retry; anything
else is logged with an id and answered INTERNAL without internals.
"""

from __future__ import annotations

import logging
import uuid

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from loanbilling.domain.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PaymentAmountRefused,
    StorageUnavailable,
)
from loanbilling.domain.payoff import PayoffAmountRefused

log = logging.getLogger(__name__)
ERROR_DOMAIN = "loanbilling.microfin.v1"
# Accepted amounts a refusal names: a loan far behind has hundreds, and a gRPC
# client takes at most 16 KB of metadata.
SHOWN_AMOUNTS = 10


def _pack(*details) -> list[any_pb2.Any]:
    packed = []
    for detail in details:
        any_message = any_pb2.Any()
        any_message.Pack(detail)
        packed.append(any_message)
    return packed


def status_for(error: DomainError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
    details: list = [info]
    message = error.message
    if isinstance(error, InvalidArgument):
        code = code_pb2.INVALID_ARGUMENT
        violations = [(v.field, v.description) for v in error.violations]
        if isinstance(error, PaymentAmountRefused):
            violations = [("amount", error.describe(SHOWN_AMOUNTS))]
            message = f"amount: {violations[0][1]}"
            accepted = error.accepted_amounts
            info.metadata["accepted_amounts"] = ",".join(map(str, accepted[:SHOWN_AMOUNTS]))
            info.metadata["accepted_amounts_count"] = str(len(accepted))
            if accepted:
                info.metadata["max_accepted_amount"] = str(accepted[-1])
        elif isinstance(error, PayoffAmountRefused):  # names the quote, as a client reads it
            info.metadata["payoff_amount"] = str(error.quote.payoff_amount)
            info.metadata["valid_on"] = error.quote.valid_on.isoformat()
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in violations
                ]
            )
        )
    elif isinstance(error, NotFound):
        code = code_pb2.NOT_FOUND
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type=error.resource,
                resource_name=str(error.resource_id),
                description=error.message,
            )
        )
    elif isinstance(error, FailedPrecondition):
        code = code_pb2.FAILED_PRECONDITION
        details.append(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=error.reason, description=error.message
                    )
                ]
            )
        )
    elif isinstance(error, AlreadyExists):
        code = code_pb2.ALREADY_EXISTS
    elif isinstance(error, OutOfRange):
        code = code_pb2.OUT_OF_RANGE
    else:
        code = code_pb2.FAILED_PRECONDITION
    return rpc_status.to_status(
        status_pb2.Status(code=code, message=message, details=_pack(*details))
    )


def _unavailable(error: Exception) -> grpc.Status:
    log.warning("database unavailable: %s", error.__class__.__name__, exc_info=error)
    return rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.UNAVAILABLE,
            message="the database is unavailable; retry with backoff (nothing was recorded "
            "unless a retry with the same idempotency key says so)",
            details=_pack(
                error_details_pb2.ErrorInfo(reason="DATABASE_UNAVAILABLE", domain=ERROR_DOMAIN)
            ),
        )
    )


def _internal(method: str, error: Exception) -> grpc.Status:
    incident = uuid.uuid4().hex[:12]
    log.error("unexpected failure in %s (incident %s)", method, incident, exc_info=error)
    return rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.INTERNAL,
            message=f"internal error (incident {incident}); it was logged",
        )
    )


def status_of(method: str, error: Exception) -> grpc.Status:
    if isinstance(error, DomainError):
        return status_for(error)
    if isinstance(error, TimeoutError):  # the server's default deadline ran out
        return rpc_status.to_status(
            status_pb2.Status(
                code=code_pb2.DEADLINE_EXCEEDED,
                message="the call took longer than the server's default deadline; "
                "retry it (with the same idempotency key for a payment)",
            )
        )
    if isinstance(error, StorageUnavailable):
        return _unavailable(error)
    return _internal(method, error)
