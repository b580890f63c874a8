"""The billing use cases. Each method is one transaction and blocks: the API layer
runs it on a worker thread."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from loanbilling.clock import BusinessClock
from loanbilling.domain.customer import CustomerDetails
from loanbilling.domain.errors import AlreadyExists, InvalidArgument, NotFound
from loanbilling.domain.events import NewEvent, creation_events, payment_events
from loanbilling.domain.loan import (
    DEFAULT_CURRENCY,
    DEFAULT_DELINQUENCY_THRESHOLD,
    InstallmentStatus,
    LoanStatus,
    LoanTerms,
    Position,
)
from loanbilling.domain.payment import SettledPayment, check_payment_date, settle_payment
from loanbilling.services import pagination
from loanbilling.storage import one_statement
from loanbilling.storage.database import autocommit, is_postgresql, transaction
from loanbilling.storage.repository import (
    CustomerRecord,
    InstallmentRecord,
    LoanRecord,
    PaymentRecord,
    Repository,
)

MAX_KEY_LENGTH = 128
T = TypeVar("T")
ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class LoanAt:
    """A loan and its position at a date."""

    loan: LoanRecord
    position: Position


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    installment: InstallmentRecord
    status: InstallmentStatus
    paid_date: dt.date | None


@dataclass(frozen=True, slots=True)
class LoanWithSchedule(LoanAt):
    schedule: list[ScheduleLine]


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment: PaymentRecord
    replayed: bool


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    items: list[ItemT]
    next_page_token: str


def _check_key(field_name: str, key: str, *, required: bool) -> str | None:
    if not key:
        if required:
            raise InvalidArgument.of(
                field_name, "is required: a unique key per payment, reused only to retry it"
            )
        return None
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidArgument.of(field_name, f"must be 1 to {MAX_KEY_LENGTH} printable characters")
    return key


class BillingService:
    def __init__(
        self,
        engine: Engine,
        clock: BusinessClock,
        events_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        # Called after a commit that wrote events: wakes the sequencer.
        self.events_written = events_written
        # PostgreSQL writes payments and new loans in one statement each.
        self.one_statement = is_postgresql(engine)

    def _idempotent(self, create: Callable[[], T], replay: Callable[[], T | None]) -> T:
        """Runs `create`; if a concurrent request took the same key first, replays that one."""
        try:
            return create()
        except IntegrityError:
            replayed = replay()
            if replayed is None:
                raise
            return replayed

    # Customers

    def create_customer(
        self, *, name: str, email: str, phone: str, request_id: str = ""
    ) -> CustomerRecord:
        details = CustomerDetails.create(name=name, email=email, phone=phone)
        key = _check_key("request_id", request_id, required=False)

        def replay() -> CustomerRecord | None:
            if key is None:
                return None
            with transaction(self.engine, write=False) as conn:
                existing = Repository(conn).customer_by_request_id(key)
            if existing and (existing.name, existing.email, existing.phone) != (
                details.name,
                details.email,
                details.phone,
            ):
                raise AlreadyExists(
                    f"request_id {key!r} already created customer {existing.id} "
                    "with other details; use a new request_id for a new customer"
                )
            return existing

        def create() -> CustomerRecord:
            if (existing := replay()) is not None:
                return existing
            with transaction(self.engine, write=True) as conn:
                repo = Repository(conn)
                customer_id = repo.add_customer(details.name, details.email, details.phone, key)
                return repo.get_customer(customer_id)

        return self._idempotent(create, replay)

    def get_customer(self, customer_id: int) -> CustomerRecord:
        _check_id("id", customer_id)
        with transaction(self.engine, write=False) as conn:
            customer = Repository(conn).get_customer(customer_id)
        if customer is None:
            raise NotFound("customer", customer_id)
        return customer

    # Loans

    def create_loan(
        self,
        *,
        customer_id: int,
        principal_amount: int,
        interest_rate_bps: int,
        weeks: int,
        start_date: dt.date | None = None,
        currency_code: str = "",
        delinquency_threshold: int | None = None,
        request_id: str = "",
    ) -> LoanWithSchedule:
        _check_id("customer_id", customer_id)
        today = self.clock.today()
        terms = LoanTerms.create(
            principal_amount=principal_amount,
            interest_rate_bps=interest_rate_bps,
            weeks=weeks,
            start_date=start_date or today,
            currency_code=currency_code or DEFAULT_CURRENCY,
            delinquency_threshold=(
                DEFAULT_DELINQUENCY_THRESHOLD
                if delinquency_threshold is None
                else delinquency_threshold
            ),
        )
        key = _check_key("request_id", request_id, required=False)

        def same_request(loan: LoanRecord) -> bool:
            stored = loan.terms
            return loan.customer_id == customer_id and stored == (
                terms if start_date else replace(terms, start_date=stored.start_date)
            )

        def replay() -> LoanWithSchedule | None:
            if key is None:
                return None
            with transaction(self.engine, write=False) as conn:
                repo = Repository(conn)
                existing = repo.loan_by_request_id(key)
                if existing is None:
                    return None
                if not same_request(existing):
                    raise AlreadyExists(
                        f"request_id {key!r} already created loan {existing.id} with other "
                        "terms; use a new request_id for a new loan"
                    )
                return self._with_schedule(repo, existing, today)

        def create() -> LoanWithSchedule:
            if (existing := replay()) is not None:
                return existing
            status = Position(terms, 0, today).status
            schedule = terms.schedule()
            if self.one_statement:
                with autocommit(self.engine) as conn:
                    loan_id = one_statement.add_loan(
                        conn,
                        customer_id=customer_id,
                        terms=terms,
                        schedule=schedule,
                        status=status,
                        request_id=key,
                        new_events=creation_events(0, customer_id, terms, today),
                        now=dt.datetime.now(dt.UTC),
                    )
                if loan_id is None:
                    raise NotFound("customer", customer_id)
            else:
                with transaction(self.engine, write=True) as conn:
                    repo = Repository(conn)
                    if repo.get_customer(customer_id) is None:
                        raise NotFound("customer", customer_id)
                    loan_id = repo.add_loan(customer_id, terms, schedule, status, key)
                    repo.add_events(creation_events(loan_id, customer_id, terms, today))
            self.events_written()
            # A new loan is its terms: the answer needs no read back.
            loan = LoanRecord(
                id=loan_id,
                customer_id=customer_id,
                terms=terms,
                paid_count=0,
                outstanding_amount=terms.total_amount,
                last_payment_date=None,
                status=status,
                request_id=key,
            )
            lines = [
                InstallmentRecord(
                    i.week_number, i.due_date, i.amount, i.principal_amount, i.interest_amount, None
                )
                for i in schedule
            ]
            return _with_schedule(loan, Position(terms, 0, today), lines)

        return self._idempotent(create, replay)

    def get_loan(self, loan_id: int, as_of: dt.date | None = None) -> LoanWithSchedule:
        _check_id("loan_id", loan_id)
        with transaction(self.engine, write=False) as conn:
            repo = Repository(conn)
            return self._with_schedule(repo, self._loan(repo, loan_id), as_of or self.clock.today())

    def get_position(self, loan_id: int, as_of: dt.date | None = None) -> LoanAt:
        """Outstanding, overdue and delinquency at the end of `as_of`: one or two index reads."""
        _check_id("loan_id", loan_id)
        with transaction(self.engine, write=False) as conn:
            repo = Repository(conn)
            loan = self._loan(repo, loan_id)
            return LoanAt(loan, _position(repo, loan, as_of or self.clock.today()))

    def list_loans(
        self,
        *,
        customer_id: int = 0,
        status: LoanStatus | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[LoanAt]:
        if customer_id < 0:
            raise InvalidArgument.of("customer_id", "must be a positive id, or 0 for all")
        limit = pagination.page_size(page_size)
        before_id = pagination.decode_token(page_token)
        today = self.clock.today()
        with transaction(self.engine, write=False) as conn:
            repo = Repository(conn)
            loans = repo.list_loans(
                customer_id=customer_id or None, status=status, before_id=before_id, limit=limit + 1
            )
            items = [LoanAt(loan, _position(repo, loan, today)) for loan in loans[:limit]]
        token = pagination.encode_token(loans[limit - 1].id) if len(loans) > limit else ""
        return Page(items, token)

    # Payments

    def make_payment(
        self,
        *,
        loan_id: int,
        amount: int,
        idempotency_key: str,
        payment_date: dt.date | None = None,
    ) -> PaymentResult:
        _check_id("loan_id", loan_id)
        key = _check_key("idempotency_key", idempotency_key, required=True)

        def replay(repo: Repository) -> PaymentResult | None:
            earlier = repo.payment_by_key(key)
            if earlier is None:
                return None
            if (
                earlier.loan_id != loan_id
                or earlier.amount != amount
                or (payment_date is not None and earlier.payment_date != payment_date)
            ):
                raise AlreadyExists(
                    f"idempotency_key {key!r} was used for payment {earlier.id} "
                    f"(loan {earlier.loan_id}, amount {earlier.amount:,}, "
                    f"date {earlier.payment_date}); a new payment needs a new key"
                )
            return PaymentResult(earlier, replayed=True)

        def create() -> PaymentResult:
            today = self.clock.today()
            if self.one_statement:
                pay = functools.partial(
                    self._pay_in_one_statement, loan_id, amount, key, payment_date, today, replay
                )
                with autocommit(self.engine) as conn:
                    done = pay(conn, locked=False)
                if done is None:  # the loan changed since the read: decide under its lock
                    with transaction(self.engine, write=True) as conn:
                        done = pay(conn, locked=True)
                if not done.replayed:
                    self.events_written()
                return done
            with transaction(self.engine, write=True) as conn:
                repo = Repository(conn)
                # The row lock serialises payments on one loan; the key is checked
                # after it so that a retry racing its original sees it committed.
                loan = self._loan(repo, loan_id, for_update=True)
                if (earlier := replay(repo)) is not None:
                    return earlier
                plan = _plan_payment(loan, amount, payment_date, today)
                payment_id = repo.record_payment(
                    loan,
                    amount=amount,
                    payment_date=plan.paid_on,
                    first_week=plan.settled.first_week,
                    last_week=plan.settled.last_week,
                    idempotency_key=key,
                    outstanding_after=plan.settled.outstanding_after,
                    status_after=plan.settled.status_after,
                    stored_status=plan.at_today.status,
                )
                repo.add_events(plan.events_of(payment_id))
            self.events_written()
            return PaymentResult(plan.payment(payment_id, key), replayed=False)

        def replay_after_conflict() -> PaymentResult | None:
            with transaction(self.engine, write=False) as conn:
                return replay(Repository(conn))

        return self._idempotent(create, replay_after_conflict)

    @staticmethod
    def _pay_in_one_statement(
        loan_id: int,
        amount: int,
        key: str,
        payment_date: dt.date | None,
        today: dt.date,
        replay: Callable[[Repository], PaymentResult | None],
        conn: Connection,
        *,
        locked: bool,
    ) -> PaymentResult | None:
        """PostgreSQL: read the loan, decide, write everything in one statement.

        Unlocked (autocommit), None when the loan changed between the read and
        the write (a concurrent payment or sweep): the caller then comes back
        `locked`, in a transaction that holds the loan's row lock from the read on.
        The key is checked after the lock, so a retry racing its original sees it.
        """
        repo = Repository(conn)
        loan, key_taken = repo.loan_and_key(loan_id, key, for_update=locked)
        if loan is None:
            raise NotFound("loan", loan_id)
        if key_taken:
            return replay(repo)
        plan = _plan_payment(loan, amount, payment_date, today)
        payment_id = one_statement.record_payment(
            conn,
            loan_id=loan.id,
            paid_before=loan.paid_count,
            status_before=loan.status,
            amount=amount,
            currency_code=loan.terms.currency_code,
            payment_date=plan.paid_on,
            first_week=plan.settled.first_week,
            last_week=plan.settled.last_week,
            idempotency_key=key,
            outstanding_after=plan.settled.outstanding_after,
            status_after=plan.settled.status_after,
            stored_status=plan.at_today.status,
            new_events=plan.events_of(0),
            now=dt.datetime.now(dt.UTC),
        )
        if payment_id is None:
            if locked:
                raise RuntimeError(f"loan {loan_id} changed under its row lock")
            return None
        return PaymentResult(plan.payment(payment_id, key), replayed=False)

    def list_payments(
        self, *, loan_id: int, page_size: int = 0, page_token: str = ""
    ) -> Page[PaymentRecord]:
        _check_id("loan_id", loan_id)
        limit = pagination.page_size(page_size)
        after_id = pagination.decode_token(page_token)
        with transaction(self.engine, write=False) as conn:
            repo = Repository(conn)
            self._loan(repo, loan_id)
            found = repo.list_payments(loan_id, after_id=after_id, limit=limit + 1)
        token = pagination.encode_token(found[limit - 1].id) if len(found) > limit else ""
        return Page(found[:limit], token)

    # Helpers

    @staticmethod
    def _loan(repo: Repository, loan_id: int, *, for_update: bool = False) -> LoanRecord:
        loan = repo.get_loan(loan_id, for_update=for_update)
        if loan is None:
            raise NotFound("loan", loan_id)
        return loan

    @staticmethod
    def _with_schedule(repo: Repository, loan: LoanRecord, as_of: dt.date) -> LoanWithSchedule:
        return _with_schedule(loan, _position(repo, loan, as_of), repo.installments(loan.id))


@dataclass(frozen=True, slots=True)
class _PaymentPlan:
    """What a payment on a loan as read does: the domain's decision, before any write."""

    loan: LoanRecord
    amount: int
    paid_on: dt.date
    settled: SettledPayment
    at_today: Position

    def payment(self, payment_id: int, idempotency_key: str) -> PaymentRecord:
        """The payment as recorded under `payment_id`."""
        return PaymentRecord(
            id=payment_id,
            loan_id=self.loan.id,
            amount=self.amount,
            currency_code=self.loan.terms.currency_code,
            payment_date=self.paid_on,
            first_week=self.settled.first_week,
            last_week=self.settled.last_week,
            idempotency_key=idempotency_key,
            outstanding_after=self.settled.outstanding_after,
            status_after=self.settled.status_after,
        )

    def events_of(self, payment_id: int) -> list[NewEvent]:
        return payment_events(
            self.loan.id,
            self.loan.customer_id,
            payment_id=payment_id,
            amount=self.amount,
            last_week=self.settled.last_week,
            at_payment=self.settled.after,
            at_today=self.at_today,
            stored_before=self.loan.status,
        )


def _plan_payment(
    loan: LoanRecord, amount: int, payment_date: dt.date | None, today: dt.date
) -> _PaymentPlan:
    paid_on = payment_date or today
    check_payment_date(
        loan.terms, paid_on, business_date=today, last_payment_date=loan.last_payment_date
    )
    settled = settle_payment(loan.terms, loan.paid_count, amount, paid_on)
    at_today = Position(loan.terms, settled.last_week, today)
    return _PaymentPlan(loan, amount, paid_on, settled, at_today)


def _with_schedule(
    loan: LoanRecord, position: Position, installments: list[InstallmentRecord]
) -> LoanWithSchedule:
    lines = [
        ScheduleLine(
            installment=line,
            status=position.installment_status(line.week_number),
            # A read of the past does not show payments made after it.
            paid_date=line.paid_date if line.week_number <= position.paid_count else None,
        )
        for line in installments
    ]
    return LoanWithSchedule(loan, position, lines)


def _position(repo: Repository, loan: LoanRecord, as_of: dt.date) -> Position:
    """The loan at the end of `as_of`. From the loan row alone unless `as_of` is
    before its latest payment, then one index seek into payments."""
    if loan.last_payment_date is None or as_of >= loan.last_payment_date:
        paid_count = loan.paid_count
    else:
        paid_count = repo.paid_count_at(loan.id, as_of)
    return Position(loan.terms, paid_count, as_of)


def _check_id(field_name: str, value: int) -> None:
    if value <= 0:
        raise InvalidArgument.of(field_name, "must be a positive id")
