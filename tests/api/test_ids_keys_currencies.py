"""Three kinds of input every RPC treats alike, through a real gRPC channel on
each database: a filter naming a loan or customer that does not exist is
NOT_FOUND everywhere (streams included, before they stream); an idempotency key
is refused when blank or with spaces around it, and required by every call that
moves money; a currency code must be on the ISO 4217 list. Each refusal names
the field, says what to do, records nothing."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from microfin.loanbilling.v1 import analytics_service_pb2 as analytics_api
from microfin.loanbilling.v1 import (
    analytics_service_pb2_grpc,
    events_pb2,
    ledger_service_pb2_grpc,
    notification_service_pb2_grpc,
)
from microfin.loanbilling.v1 import ledger_service_pb2 as ledger_api
from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import notification_service_pb2 as notify

from loanbilling.domain.errors import Refusals
from loanbilling.domain.loan import check_currency_code
from loanbilling.services.currencies import ISO_4217
from tests.conftest import START
from tests.support.api import (
    create_canonical_loan,
    create_customer,
    details_of,
    new_key,
    pay,
    pb_date,
    row_counts,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ALL_KINDS = [k for k in events_pb2.EventKind.values() if k]
UNKNOWN = 999


def refused(call, request, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, **kwargs)
    return caught.value


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    return [(v.field, v.description) for v in details_of(error)["BadRequest"].field_violations]


@pytest.fixture
def streams(channel):
    return notification_service_pb2_grpc.NotificationServiceStub(channel)


@pytest.fixture
def ledger(channel):
    return ledger_service_pb2_grpc.LedgerServiceStub(channel)


@pytest.fixture
def analytics(channel):
    return analytics_service_pb2_grpc.AnalyticsServiceStub(channel)


def first_messages(streams, request, count: int, timeout: float = 10.0) -> list:
    """The first `count` messages of a stream (or fewer if it ends), then cancels it."""
    stream = streams.StreamNotifications(request, timeout=timeout)
    got = []
    try:
        for message in stream:
            got.append(message)
            if len(got) == count:
                break
    finally:
        stream.cancel()
    return got


def stream_refusal(streams, request) -> tuple[grpc.RpcError, list]:
    """The status a stream ends with, and what it sent before: a refusal comes at
    once (the deadline is far), with no message."""
    stream = streams.StreamNotifications(request, timeout=20)
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for message in stream:
            received.append(message)
    return caught.value, received


# Item 6: an unknown id in a filter is NOT_FOUND everywhere


@pytest.fixture
def book(stub):
    """A customer with a loan, and a second customer with none."""
    customer_id = create_customer(stub)
    loan_id = create_canonical_loan(stub, customer_id, START).id
    return customer_id, loan_id, create_customer(stub, name="Budi")


UNARY_FILTERS = [
    ("LoanService", "ListLoans", api.ListLoansRequest(customer_id=UNKNOWN), "customer"),
    ("LoanService", "ListPayments", api.ListPaymentsRequest(loan_id=UNKNOWN), "loan"),
    (
        "LedgerService",
        "ListJournalEntries",
        ledger_api.ListJournalEntriesRequest(loan_id=UNKNOWN),
        "loan",
    ),
]


@pytest.mark.parametrize(("service", "method", "request_", "resource"), UNARY_FILTERS)
def test_an_unknown_id_in_a_list_filter_is_not_found(
    stub, ledger, engine, book, service, method, request_, resource
):
    before = row_counts(engine)
    error = refused(getattr(stub if service == "LoanService" else ledger, method), request_)
    assert error.code() == NOT_FOUND, error.details()
    assert error.details() == f"{resource} {UNKNOWN} does not exist"
    info = details_of(error)["ResourceInfo"]
    assert (info.resource_type, info.resource_name) == (resource, str(UNKNOWN))
    assert row_counts(engine) == before


@pytest.mark.parametrize(
    ("filters", "resource"),
    [(dict(loan_id=UNKNOWN), "loan"), (dict(customer_id=UNKNOWN), "customer")],
)
def test_a_stream_filtered_on_an_unknown_id_is_refused_before_streaming(
    streams, engine, book, filters, resource
):
    before = row_counts(engine)
    request = notify.StreamNotificationsRequest(kinds=ALL_KINDS, **filters)
    error, received = stream_refusal(streams, request)
    assert error.code() == NOT_FOUND, error.details()
    assert error.details() == f"{resource} {UNKNOWN} does not exist"
    assert details_of(error)["ResourceInfo"].resource_type == resource
    assert received == []  # not a heartbeat: refused before the stream began
    assert row_counts(engine) == before


def test_a_stream_on_a_loan_and_another_customer_is_refused(streams, book):
    customer_id, loan_id, other = book
    request = notify.StreamNotificationsRequest(loan_id=loan_id, customer_id=other)
    error, received = stream_refusal(streams, request)
    assert error.code() == INVALID
    [(field, says)] = violations(error)
    assert field == "customer_id"
    assert says.startswith(f"loan {loan_id} is customer {customer_id}'s, not customer {other}'s")
    assert received == []
    request.customer_id = UNKNOWN  # a customer that does not exist is NOT_FOUND first
    assert stream_refusal(streams, request)[0].code() == NOT_FOUND


def test_known_ids_still_stream_and_list(stub, streams, ledger, book):
    customer_id, loan_id, no_loans = book
    # The loan's own creation, on each filter that names it (and both at once).
    for filters in (
        dict(loan_id=loan_id),
        dict(customer_id=customer_id),
        dict(loan_id=loan_id, customer_id=customer_id),
    ):
        request = notify.StreamNotificationsRequest(kinds=ALL_KINDS, **filters)
        [message] = first_messages(streams, request, 1)
        assert message.event.loan_id == loan_id, filters
        assert message.event.kind == events_pb2.EVENT_KIND_LOAN_CREATED
    # A customer who exists but has no loans: an empty page, as before.
    assert not stub.ListLoans(api.ListLoansRequest(customer_id=no_loans)).loans
    assert [
        loan.id for loan in stub.ListLoans(api.ListLoansRequest(customer_id=customer_id)).loans
    ] == [loan_id]
    assert not stub.ListPayments(api.ListPaymentsRequest(loan_id=loan_id)).payments
    assert ledger.ListJournalEntries(ledger_api.ListJournalEntriesRequest(loan_id=loan_id)).entries


def test_a_loan_streams_as_soon_as_it_is_created(stub, streams, book):
    """No window between CreateLoan's answer and the stream knowing the loan."""
    customer_id, _, _ = book
    loan_id = create_canonical_loan(stub, customer_id, START).id
    request = notify.StreamNotificationsRequest(kinds=ALL_KINDS, loan_id=loan_id)
    [message] = first_messages(streams, request, 1)
    assert message.event.loan_id == loan_id


# Item 7: idempotency keys, neither blank nor with spaces around them

BLANK = [" ", "   "]
PADDED = [" key-1", "key-1 ", " key-1 "]


@pytest.fixture
def keyed(stub, clock):
    """A loan with week 1 due and payable, and a payment on another loan to reverse."""
    customer_id = create_customer(stub)
    loan_id = create_canonical_loan(stub, customer_id, START).id
    other = create_canonical_loan(stub, customer_id, START).id
    clock.current = START + dt.timedelta(days=7)
    payment_id = pay(stub, other, 110_000).payment.id
    return customer_id, loan_id, payment_id


def keyed_requests(customer_id: int, loan_id: int, payment_id: int) -> dict:
    """Each RPC that takes a key: its key field, and a request with that key."""
    return {
        "CreateCustomer": (
            "request_id",
            lambda key: api.CreateCustomerRequest(
                name="Siti", email="siti@example.com", request_id=key
            ),
        ),
        "CreateLoan": (
            "request_id",
            lambda key: api.CreateLoanRequest(
                customer_id=customer_id,
                principal_amount=5_000_000,
                interest_rate_bps=1000,
                weeks=50,
                start_date=pb_date(START),
                request_id=key,
            ),
        ),
        "MakePayment": (
            "idempotency_key",
            lambda key: api.MakePaymentRequest(
                loan_id=loan_id, amount=110_000, idempotency_key=key
            ),
        ),
        "PayOffLoan": (
            "idempotency_key",
            lambda key: api.PayOffLoanRequest(
                loan_id=loan_id, amount=5_500_000, idempotency_key=key
            ),
        ),
        "ReversePayment": (
            "idempotency_key",
            lambda key: api.ReversePaymentRequest(
                payment_id=payment_id, reason="transfer bounced", idempotency_key=key
            ),
        ),
        "WriteOffLoan": (
            "idempotency_key",
            lambda key: api.WriteOffLoanRequest(
                loan_id=loan_id, reason="borrower unreachable", idempotency_key=key
            ),
        ),
    }


KEYED_METHODS = [
    "CreateCustomer",
    "CreateLoan",
    "MakePayment",
    "PayOffLoan",
    "ReversePayment",
    "WriteOffLoan",
]


@pytest.mark.parametrize("method", KEYED_METHODS)
def test_blank_and_padded_keys_are_refused(stub, engine, keyed, method):
    field, request = keyed_requests(*keyed)[method]
    before = row_counts(engine)
    for key, says in [(k, "is blank") for k in BLANK] + [
        (k, "must not begin or end with spaces") for k in PADDED
    ]:
        error = refused(getattr(stub, method), request(key))
        assert error.code() == INVALID, (key, error.details())
        [(named, description)] = violations(error)
        assert named == field
        assert description.startswith(says), description
        assert error.details().startswith(f"{field}: {says}")
        assert details_of(error)["ErrorInfo"].reason == "INVALID_ARGUMENT"
    assert row_counts(engine) == before
    # Spaces inside a key are the caller's business; the refusals used up nothing.
    getattr(stub, method)(request("key 1"))


def test_the_key_refusals_say_what_to_do(stub, keyed):
    _, loan_id, _ = keyed
    error = refused(
        stub.MakePayment,
        api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key=" "),
    )
    assert error.details() == (
        "idempotency_key: is blank: send a unique key of printable characters (e.g. a UUID)"
    )
    error = refused(
        stub.CreateCustomer,
        api.CreateCustomerRequest(name="Siti", email="siti@example.com", request_id="   "),
    )
    assert error.details() == (
        "request_id: is blank: send a unique key of printable characters (e.g. a UUID), "
        "or none at all"
    )
    error = refused(
        stub.MakePayment,
        api.MakePaymentRequest(loan_id=loan_id, amount=110_000, idempotency_key="pay-7 "),
    )
    assert error.details() == (
        "idempotency_key: must not begin or end with spaces: keys are compared exactly, "
        "so send it without them, the same way on every retry"
    )


MONEY_MOVING = [m for m in KEYED_METHODS if m != "CreateCustomer"]


@pytest.mark.parametrize("method", MONEY_MOVING)
def test_every_call_that_moves_money_requires_its_key(stub, engine, keyed, method):
    """Item 8: a CreateLoan sent twice without a key made two loans. Every call that
    moves money is refused without its key, as often as it is sent, recording nothing."""
    field, request = keyed_requests(*keyed)[method]
    before = row_counts(engine)
    for _ in range(2):
        error = refused(getattr(stub, method), request(""))
        assert error.code() == INVALID, error.details()
        assert violations(error) == [
            (field, "is required: a unique key per request, reused only to retry it")
        ]
    assert row_counts(engine) == before


def test_a_create_loan_retried_with_its_key_lends_once(stub, engine, keyed):
    customer_id, loan_id, payment_id = keyed
    _, request = keyed_requests(customer_id, loan_id, payment_id)["CreateLoan"]
    first = stub.CreateLoan(request("loan-for-siti")).loan
    after_first = row_counts(engine)
    again = stub.CreateLoan(request("loan-for-siti")).loan
    assert again == first
    assert row_counts(engine) == after_first
    # The same key with other terms is another request: refused, not a second loan.
    other_terms = request("loan-for-siti")
    other_terms.weeks = 25
    assert refused(stub.CreateLoan, other_terms).code() == grpc.StatusCode.ALREADY_EXISTS
    assert row_counts(engine) == after_first


def test_a_customer_needs_no_key(stub, engine):
    """CreateCustomer moves no money: its key stays optional."""
    before = row_counts(engine)
    request = api.CreateCustomerRequest(name="Siti", email="siti@example.com")
    assert stub.CreateCustomer(request).customer.id != stub.CreateCustomer(request).customer.id
    assert row_counts(engine) != before


def test_a_key_reused_on_another_loan_reveals_nothing_of_its_request(stub, engine, keyed):
    customer_id, loan_id, _ = keyed
    pay(stub, loan_id, 110_000, key="shared-key")
    other = create_canonical_loan(stub, customer_id, START).id
    before = row_counts(engine)
    for request in (
        api.MakePaymentRequest(loan_id=other, amount=110_000, idempotency_key="shared-key"),
        api.PayOffLoanRequest(loan_id=other, amount=5_500_000, idempotency_key="shared-key"),
    ):
        error = refused(getattr(stub, type(request).__name__.removesuffix("Request")), request)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        # Neither the other payment's loan, nor its amount, nor its date.
        assert error.details() == (
            "idempotency_key 'shared-key' was already used for another request; "
            "a new payment needs a new key"
        )
        assert details_of(error)["ErrorInfo"].reason == "IDEMPOTENCY_KEY_REUSED"
    assert row_counts(engine) == before


# Item 9: currency codes from the ISO 4217 list


def test_the_iso_4217_list_comes_from_the_library():
    assert {"IDR", "USD", "EUR", "JPY", "KWD"} <= ISO_4217
    assert not {"XYZ", "ABC", "usd", "RUB1"} & ISO_4217
    assert all(len(code) == 3 and code.isupper() for code in ISO_4217)


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("XYZ", "'XYZ' is not an ISO 4217 currency code, e.g. IDR, USD"),
        ("ABC", "'ABC' is not an ISO 4217 currency code, e.g. IDR, USD"),
        (
            "usd",
            "'usd' is not an ISO 4217 currency code: codes are written in capital letters, "
            "e.g. 'USD'",
        ),
        (
            "Idr",
            "'Idr' is not an ISO 4217 currency code: codes are written in capital letters, "
            "e.g. 'IDR'",
        ),
        ("RUPIAH", "'RUPIAH' is not an ISO 4217 currency code, e.g. IDR, USD"),
        ("x" * 40, f"{'x' * 16!r}... is not an ISO 4217 currency code, e.g. IDR, USD"),
    ],
)
def test_a_code_off_the_iso_4217_list_is_refused_everywhere(
    stub, ledger, analytics, engine, code, says
):
    customer_id = create_customer(stub)
    before = row_counts(engine)
    calls = [
        (
            stub.CreateLoan,
            api.CreateLoanRequest(
                customer_id=customer_id,
                principal_amount=5_000_000,
                interest_rate_bps=1000,
                weeks=50,
                start_date=pb_date(START),
                currency_code=code,
                request_id=new_key("loan"),
            ),
        ),
        (
            analytics.GetPortfolioSummary,
            analytics_api.GetPortfolioSummaryRequest(currency_code=code),
        ),
        (ledger.GetTrialBalance, ledger_api.GetTrialBalanceRequest(currency_code=code)),
    ]
    for call, request in calls:
        error = refused(call, request)
        assert error.code() == INVALID, error.details()
        assert violations(error) == [("currency_code", says)]
        assert error.details() == f"currency_code: {says}"
    assert row_counts(engine) == before


def test_codes_on_the_list_are_accepted(stub, ledger, analytics):
    customer_id = create_customer(stub)
    for code in ("USD", "EUR", "JPY"):
        loan = create_canonical_loan(stub, customer_id, START, currency_code=code)
        assert loan.currency_code == code
        summary = analytics.GetPortfolioSummary(
            analytics_api.GetPortfolioSummaryRequest(currency_code=code)
        )
        assert (summary.currency_code, summary.loan_count) == (code, 1)
        balance = ledger.GetTrialBalance(ledger_api.GetTrialBalanceRequest(currency_code=code))
        assert balance.currency_code == code
    # A code the books do not hold is on the list all the same: an empty answer.
    empty = analytics.GetPortfolioSummary(
        analytics_api.GetPortfolioSummaryRequest(currency_code="KWD")
    )
    assert empty.loan_count == 0


def test_the_domain_checks_the_list_it_is_given():
    """The domain holds no copy of the list (standard library only): given one, it
    checks against it; without one, the shape alone (three capital letters)."""

    def said(code: str, known=None) -> list[str]:
        refusals = Refusals()
        check_currency_code(refusals, code, known=known)
        return [v.description for v in refusals.violations]

    assert said("XYZ") == []
    assert said("XYZ", known={"IDR"}) == ["'XYZ' is not an ISO 4217 currency code, e.g. IDR, USD"]
    assert said("IDR", known={"IDR"}) == []
    assert said("idr") == [
        "'idr' is not an ISO 4217 currency code: codes are written in capital letters, e.g. 'IDR'"
    ]
    assert said("ID") == ["'ID' is not an ISO 4217 currency code, e.g. IDR, USD"]
