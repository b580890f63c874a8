"""Refusals the rules can give. The API layer maps each class to one gRPC code."""

from __future__ import annotations

from dataclasses import dataclass, field


class DomainError(Exception):
    """A request the rules refuse. `reason` is a stable UPPER_SNAKE code for clients."""

    reason: str = "REFUSED"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(DomainError):
    """Input that can never be accepted as it is (INVALID_ARGUMENT)."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation], *, reason: str | None = None) -> None:
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(message, reason=reason)
        self.violations = violations

    @classmethod
    def of(cls, field_name: str, description: str, **kwargs) -> InvalidArgument:
        return cls([FieldViolation(field_name, description)], **kwargs)


class PaymentAmountRefused(InvalidArgument):
    """The amount is not one of the amounts payable now; lists the ones that are.

    A loan far behind can have hundreds of accepted amounts: the message names
    the first few and how many there are, so that it stays well within the 16 KB
    of metadata a gRPC client accepts.
    """

    reason = "PAYMENT_AMOUNT_NOT_ACCEPTED"
    SHOWN = 10

    def __init__(self, amount: int, accepted_amounts: list[int], currency_code: str) -> None:
        shown = ", ".join(f"{a:,}" for a in accepted_amounts[: self.SHOWN])
        if len(accepted_amounts) > self.SHOWN:
            shown += (
                f", ... ({len(accepted_amounts)} amounts in all: the oldest 1 to "
                f"{len(accepted_amounts)} unpaid installments, up to {accepted_amounts[-1]:,})"
            )
        super().__init__(
            [
                FieldViolation(
                    "amount",
                    f"{amount:,} {currency_code} is not payable now; accepted amounts: {shown}",
                )
            ]
        )
        self.accepted_amounts = accepted_amounts


class NotFound(DomainError):
    reason = "NOT_FOUND"

    def __init__(self, resource: str, resource_id: object) -> None:
        super().__init__(f"{resource} {resource_id} does not exist")
        self.resource = resource
        self.resource_id = resource_id


class FailedPrecondition(DomainError):
    """Well-formed input the current state of the loan refuses (FAILED_PRECONDITION)."""

    reason = "FAILED_PRECONDITION"


class OutOfRange(DomainError):
    """A position past the end of what exists, e.g. a stream cursor ahead of the outbox."""

    reason = "OUT_OF_RANGE"


class AlreadyExists(DomainError):
    """An idempotency key reused for a different request (ALREADY_EXISTS)."""

    reason = "IDEMPOTENCY_KEY_REUSED"


@dataclass(frozen=True)
class Refusals:
    """Collects field violations so that one answer names every bad field."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_name: str, description: str) -> None:
        self.violations.append(FieldViolation(field_name, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(list(self.violations))
