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
    """The amount is not one of the amounts payable now; lists the ones that are."""

    reason = "PAYMENT_AMOUNT_NOT_ACCEPTED"

    def __init__(self, amount: int, accepted_amounts: list[int], currency_code: str) -> None:
        self.amount = amount
        self.accepted_amounts = accepted_amounts
        self.currency_code = currency_code
        super().__init__([FieldViolation("amount", self.describe())])

    def describe(self, shown: int | None = None) -> str:
        """The refusal, naming the first `shown` accepted amounts (all by default)
        and, when some are left out, how many there are and the largest."""
        accepted = self.accepted_amounts
        listed = ", ".join(f"{a:,}" for a in accepted[:shown])
        if shown is not None and len(accepted) > shown:
            listed += (
                f", ... ({len(accepted)} amounts in all: the oldest 1 to "
                f"{len(accepted)} unpaid installments, up to {accepted[-1]:,})"
            )
        return (
            f"{self.amount:,} {self.currency_code} is not payable now; "
            f"accepted amounts: {listed}"
        )


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

    @classmethod
    def key_reused(cls, key: str, what: str) -> AlreadyExists:
        """The refusal of a key already used for another request: it names nothing
        of that request (its loan may not be the caller's)."""
        return cls(
            f"idempotency_key {key!r} was already used for another request; "
            f"a new {what} needs a new key"
        )


class StorageError(Exception):
    """A failure of the storage underneath, in the project's own terms: storage
    translates driver errors into these, so no layer above it names a driver."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or did not answer in time; the caller may retry."""


class DuplicateKey(StorageError):
    """A unique request key was taken by a concurrent request between our read and
    our write: the caller replays that request's outcome."""


@dataclass(frozen=True)
class Refusals:
    """Collects field violations so that one answer names every bad field."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_name: str, description: str) -> None:
        self.violations.append(FieldViolation(field_name, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(list(self.violations))
