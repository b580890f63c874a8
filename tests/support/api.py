"""Small helpers for tests that speak to the server over a real channel."""

from __future__ import annotations

import datetime as dt
import itertools

import grpc
from google.rpc import error_details_pb2
from google.type import date_pb2
from grpc_status import rpc_status
from microfin.loanbilling.v1 import loan_service_pb2 as api

_keys = itertools.count(1)


def pb_date(value: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def py_date(value: date_pb2.Date) -> dt.date:
    return dt.date(value.year, value.month, value.day)


def new_key(prefix: str = "key") -> str:
    return f"{prefix}-{next(_keys)}"


def create_customer(stub, name: str = "Siti Rahayu") -> int:
    response = stub.CreateCustomer(
        api.CreateCustomerRequest(name=name, email="siti@example.com", phone="+62 812 3456 7890")
    )
    return response.customer.id


def create_canonical_loan(stub, customer_id: int, start: dt.date, **overrides):
    fields = dict(
        customer_id=customer_id,
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=pb_date(start),
        request_id=new_key("loan"),
    )
    fields.update(overrides)
    return stub.CreateLoan(api.CreateLoanRequest(**fields)).loan


def lend_canonical(billing, customer_id: int, start: dt.date, **overrides):
    """The canonical loan (5,000,000 at 10 % over 50 weeks) through the service itself:
    create_canonical_loan's twin for tests below the RPCs. Answers the Loan."""
    fields = dict(
        customer_id=customer_id,
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=start,
        request_id=new_key("loan"),
    )
    fields.update(overrides)
    return billing.create_loan(**fields).loan


def pay(stub, loan_id: int, amount: int, on: dt.date | None = None, key: str | None = None):
    request = api.MakePaymentRequest(
        loan_id=loan_id, amount=amount, idempotency_key=key or new_key()
    )
    if on is not None:
        request.payment_date.CopyFrom(pb_date(on))
    return stub.MakePayment(request)


def details_of(error: grpc.RpcError) -> dict[str, object]:
    """The google.rpc details of a failed call, by type name."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status"
    found = {}
    for any_message in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.ResourceInfo,
        ):
            if any_message.Is(kind.DESCRIPTOR):
                message = kind()
                any_message.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return found


def row_counts(engine) -> dict[str, int]:
    """Rows per table: a refused request must leave these unchanged."""
    from sqlalchemy import func, select

    from loanbilling.storage.tables import metadata

    # The sequencer moves an event from pending_events to event_numbers at any
    # moment; `events` counts the events themselves.
    numbering = {"pending_events", "event_numbers"}
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in metadata.tables.items()
            if name not in numbering
        }
