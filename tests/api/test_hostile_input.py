"""Hypothesis-generated hostile requests for every RPC: every answer is a defined
status other than UNKNOWN or INTERNAL, refusals record nothing, the server stays up."""

from __future__ import annotations

import datetime as dt
import socket

import grpc
import pytest
from google.type import date_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from microfin.loanbilling.v1 import analytics_service_pb2 as analytics
from microfin.loanbilling.v1 import analytics_service_pb2_grpc, notification_service_pb2_grpc
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import notification_service_pb2 as notify

from tests.conftest import START
from tests.support.api import create_canonical_loan, create_customer, row_counts

INT64 = st.one_of(
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**62, 110_000, 5_500_000]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
INT32 = st.one_of(
    st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31), 50, 520, 521, 1000]),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
)
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "a\x00b", "IDR", "idr", "x" * 300, "siti@example.com"]),
    st.builds(lambda n: "y" * n, st.integers(min_value=1_000, max_value=1_000_000)),
)
DATE = st.one_of(
    st.none(),
    st.builds(
        date_pb2.Date,
        year=st.integers(min_value=0, max_value=10_000),
        month=st.integers(min_value=0, max_value=13),
        day=st.integers(min_value=0, max_value=32),
    ),
    st.dates().map(lambda d: date_pb2.Date(year=d.year, month=d.month, day=d.day)),
)
ENUM = st.one_of(st.integers(min_value=0, max_value=8), INT32)
DEFINED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,  # a read dated before the loan's start (rules v2)
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # only from the short stream reads below
}


def with_dates(message, **dates):
    for name, value in dates.items():
        if value is not None:
            getattr(message, name).CopyFrom(value)
    return message


REQUESTS = {
    "CreateCustomer": st.builds(
        api.CreateCustomerRequest, name=TEXT, email=TEXT, phone=TEXT, request_id=TEXT
    ),
    "GetCustomer": st.builds(api.GetCustomerRequest, id=INT64),
    "CreateLoan": st.builds(
        lambda start, **f: with_dates(api.CreateLoanRequest(**f), start_date=start),
        start=DATE,
        customer_id=st.one_of(st.just(1), INT64),
        principal_amount=INT64,
        interest_rate_bps=INT32,
        weeks=INT32,
        currency_code=TEXT,
        delinquency_threshold=INT32,
        request_id=TEXT,
    ),
    "GetLoan": st.builds(
        lambda as_of, **f: with_dates(api.GetLoanRequest(**f), as_of=as_of),
        as_of=DATE,
        loan_id=st.one_of(st.just(1), INT64),
    ),
    "ListLoans": st.builds(
        api.ListLoansRequest, customer_id=INT64, status=ENUM, page_size=INT32, page_token=TEXT
    ),
    "GetOutstanding": st.builds(
        lambda as_of, **f: with_dates(api.GetOutstandingRequest(**f), as_of=as_of),
        as_of=DATE,
        loan_id=st.one_of(st.just(1), INT64),
    ),
    "IsDelinquent": st.builds(
        lambda as_of, **f: with_dates(api.IsDelinquentRequest(**f), as_of=as_of),
        as_of=DATE,
        loan_id=st.one_of(st.just(1), INT64),
    ),
    "MakePayment": st.builds(
        lambda day, **f: with_dates(api.MakePaymentRequest(**f), payment_date=day),
        day=DATE,
        loan_id=st.one_of(st.just(1), INT64),
        amount=st.one_of(st.sampled_from([110_000, 220_000]), INT64),
        idempotency_key=st.one_of(st.just("reused-key"), TEXT),
    ),
    "GetPayoffQuote": st.builds(
        lambda as_of, **f: with_dates(api.GetPayoffQuoteRequest(**f), as_of=as_of),
        as_of=DATE,
        loan_id=st.one_of(st.just(1), INT64),
    ),
    "PayOffLoan": st.builds(
        lambda day, **f: with_dates(api.PayOffLoanRequest(**f), payment_date=day),
        day=DATE,
        loan_id=st.one_of(st.just(1), INT64),
        amount=st.one_of(st.sampled_from([5_010_000, 5_500_000, 110_000]), INT64),
        idempotency_key=st.one_of(st.just("reused-key"), TEXT),
    ),
    "ListPayments": st.builds(
        api.ListPaymentsRequest,
        loan_id=st.one_of(st.just(1), INT64),
        page_size=INT32,
        page_token=TEXT,
    ),
    "RunDelinquencySweep": st.builds(
        lambda as_of: with_dates(api.RunDelinquencySweepRequest(), as_of=as_of), as_of=DATE
    ),
}


@pytest.fixture
def seeded(stub, clock):
    """One customer and one canonical loan, business date a few weeks in."""
    customer_id = create_customer(stub)
    create_canonical_loan(stub, customer_id, START)
    clock.current = START + dt.timedelta(days=30)
    return customer_id


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("examples", [40, pytest.param(1000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("method", sorted(REQUESTS))
def test_hostile_requests_get_defined_statuses(method, examples, seeded, stub, engine):
    call = getattr(stub, method)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=REQUESTS[method])
    def check(request):
        before = row_counts(engine)
        code = _code(lambda: call(request, timeout=10))
        assert code in DEFINED - {grpc.StatusCode.DEADLINE_EXCEEDED}, (code, request)
        if code != grpc.StatusCode.OK:
            assert row_counts(engine) == before, request

    check()
    assert create_customer(stub) > 0  # still serving


def test_hostile_stream_requests(seeded, channel):
    streams = notification_service_pb2_grpc.NotificationServiceStub(channel)

    @settings(max_examples=40, deadline=None, database=None)
    @given(
        request=st.builds(
            notify.StreamNotificationsRequest,
            after_sequence=INT64,
            loan_id=INT64,
            customer_id=INT64,
            kinds=st.lists(ENUM, max_size=4),
        )
    )
    def check(request):
        def read_one():
            stream = streams.StreamNotifications(request, timeout=0.5)
            try:
                next(iter(stream), None)
            finally:
                stream.cancel()

        # OUT_OF_RANGE: a cursor past the newest event.
        assert _code(read_one) in DEFINED | {
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.OUT_OF_RANGE,
        }

    check()


def test_hostile_summary_requests(seeded, channel):
    summaries = analytics_service_pb2_grpc.AnalyticsServiceStub(channel)

    @settings(max_examples=40, deadline=None, database=None)
    @given(as_of=DATE, currency=TEXT)
    def check(as_of, currency):
        request = with_dates(
            analytics.GetPortfolioSummaryRequest(currency_code=currency), as_of=as_of
        )
        assert _code(lambda: summaries.GetPortfolioSummary(request, timeout=10)) in DEFINED

    check()


def test_raw_garbage_on_the_port_does_not_take_the_server_down(server, stub):
    host, port = server.address.rsplit(":", 1)
    payloads = [
        b"\x00" * 64,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 4096,
        bytes(range(256)) * 64,
    ]
    for payload in payloads:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(payload)
            raw.settimeout(2)
            try:
                raw.recv(1024)
            except (TimeoutError, ConnectionError):
                pass
    assert create_customer(stub) > 0


NASTY_TEXT = [
    "\x00",
    "a\x00b@example.com",
    "tab\there@example.com",
    "line\nbreak",
    "\u202eevil",
    "🦄@example.com",
    "'; DROP TABLE loans; --",
    "x" * 1_000_000,
    " ",
]
VALID = {
    "CreateCustomer": lambda: api.CreateCustomerRequest(
        name="Siti", email="siti@example.com", phone="+62 812", request_id="r-1"
    ),
    "CreateLoan": lambda: api.CreateLoanRequest(
        customer_id=1,
        principal_amount=5_000_000,
        interest_rate_bps=1000,
        weeks=50,
        start_date=date_pb2.Date(year=2026, month=1, day=5),
        currency_code="IDR",
        request_id="l-1",
    ),
    "MakePayment": lambda: api.MakePaymentRequest(loan_id=1, amount=110_000, idempotency_key="p-1"),
    "PayOffLoan": lambda: api.PayOffLoanRequest(loan_id=1, amount=5_500_000, idempotency_key="o-1"),
    "ListLoans": lambda: api.ListLoansRequest(page_token=""),
    "ListPayments": lambda: api.ListPaymentsRequest(loan_id=1),
}
STRING_FIELDS = [
    (method, field.name)
    for method, build in VALID.items()
    for field in build().DESCRIPTOR.fields
    if field.type == field.TYPE_STRING
]


@pytest.mark.parametrize(("method", "field"), STRING_FIELDS)
def test_one_nasty_string_field_in_an_otherwise_valid_request(method, field, seeded, stub, engine):
    for text in NASTY_TEXT:
        request = VALID[method]()
        setattr(request, field, text)
        before = row_counts(engine)
        code = _code(lambda r=request: getattr(stub, method)(r, timeout=10))
        assert code in DEFINED - {grpc.StatusCode.DEADLINE_EXCEEDED}, (method, field, text[:20])
        if code != grpc.StatusCode.OK:
            assert row_counts(engine) == before
