"""The billing use cases. Each method is one unit of work and blocks: the API
layer runs it on a worker thread. Decisions are the domain's; the storage
interface reads and writes them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from loanbilling.clock import BusinessClock
from loanbilling.domain.customer import Customer, CustomerDetails
from loanbilling.domain.errors import DuplicateKey, InvalidArgument, NotFound
from loanbilling.domain.events import creation_events
from loanbilling.domain.history import check_reversal_retry, decide_reversal
from loanbilling.domain.journal import creation_entry
from loanbilling.domain.loan import (
    DEFAULT_CURRENCY,
    DEFAULT_DELINQUENCY_THRESHOLD,
    Loan,
    LoanStatus,
    LoanTerms,
    PayoffInterest,
    Position,
    PrepaymentPolicy,
    ScheduleEntry,
    ScheduleLine,
    check_read_date,
    schedule_at,
)
from loanbilling.domain.payment import Payment, PaymentDecision, PaymentKind, decide_payment
from loanbilling.domain.payoff import PayoffQuote, decide_payoff, payoff_quote
from loanbilling.domain.write_off import check_write_off_retry, decide_write_off
from loanbilling.services import pagination
from loanbilling.services.currencies import ISO_4217
from loanbilling.storage.interfaces import Storage, UnitOfWork

MAX_KEY_LENGTH = 128
MAX_REASON_LENGTH = 500
T = TypeVar("T")
ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class LoanAt:
    """A loan and its position at a date."""

    loan: Loan
    position: Position


@dataclass(frozen=True, slots=True)
class LoanWithSchedule(LoanAt):
    schedule: list[ScheduleLine]


@dataclass(frozen=True, slots=True)
class PaymentResult:
    payment: Payment
    replayed: bool


@dataclass(frozen=True, slots=True)
class WriteOffResult:
    """The written-off loan at the business date, and whether this replays a retry."""

    loan: LoanAt
    replayed: bool


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    items: list[ItemT]
    next_page_token: str


def _check_key(field_name: str, key: str, *, required: bool) -> str | None:
    """An idempotency key, as sent: 1 to MAX_KEY_LENGTH printable characters,
    neither blank nor with whitespace around it (keys are compared exactly, so
    " " and "   " or "k" and "k " would be different keys). None: no key given
    (only where `required` is false)."""
    if not key:
        if required:
            raise InvalidArgument.of(
                field_name, "is required: a unique key per request, reused only to retry it"
            )
        return None
    if not key.strip():
        raise InvalidArgument.of(
            field_name,
            "is blank: send a unique key of printable characters (e.g. a UUID)"
            + ("" if required else ", or none at all"),
        )
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidArgument.of(field_name, f"must be 1 to {MAX_KEY_LENGTH} printable characters")
    if key != key.strip():
        raise InvalidArgument.of(
            field_name,
            "must not begin or end with spaces: keys are compared exactly, so send it "
            "without them, the same way on every retry",
        )
    return key


def _check_reason(field_name: str, reason: str) -> str:
    """A reversal's or a write-off's reason: required, for the people who read the
    books later; 1 to MAX_REASON_LENGTH printable characters, not blank."""
    if not reason.strip():
        raise InvalidArgument.of(field_name, "is required: say why, e.g. 'transfer bounced'")
    if len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        raise InvalidArgument.of(
            field_name, f"must be 1 to {MAX_REASON_LENGTH} printable characters"
        )
    return reason


def _check_id(field_name: str, value: int) -> None:
    if value <= 0:
        raise InvalidArgument.of(field_name, "must be a positive id")


def _idempotent(create: Callable[[], T], replay: Callable[[], T | None]) -> T:
    """Runs `create`; if a concurrent request took the same key first, replays that one."""
    try:
        return create()
    except DuplicateKey:
        replayed = replay()
        if replayed is None:
            raise
        return replayed


class BillingService:
    def __init__(
        self,
        storage: Storage,
        clock: BusinessClock,
        events_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        # Called after a commit that wrote events: wakes the sequencer.
        self.events_written = events_written

    # Customers

    def create_customer(
        self, *, name: str, email: str, phone: str, request_id: str = ""
    ) -> Customer:
        details = CustomerDetails.create(name=name, email=email, phone=phone)
        key = _check_key("request_id", request_id, required=False)

        def replay() -> Customer | None:
            if key is None:
                return None
            with self.storage.reading() as uow:
                existing = uow.customers.by_request_id(key)
            if existing is not None:
                existing.check_retry(details)
            return existing

        def create() -> Customer:
            if (existing := replay()) is not None:
                return existing
            with self.storage.writing(optimistic=True) as uow:
                customer = uow.customers.add(details, key)
                uow.commit()
            return customer

        return _idempotent(create, replay)

    def get_customer(self, customer_id: int) -> Customer:
        _check_id("id", customer_id)
        with self.storage.reading() as uow:
            customer = uow.customers.get(customer_id)
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
        prepayment_policy: PrepaymentPolicy | None = None,
        payoff_interest: PayoffInterest | None = None,
        request_id: str,
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
            prepayment_policy=prepayment_policy or PrepaymentPolicy.DUE_ONLY,
            payoff_interest=payoff_interest or PayoffInterest.FULL,
            currencies=ISO_4217,
        )
        # Required: a CreateLoan retried without its key would disburse twice.
        key = _check_key("request_id", request_id, required=True)

        def replay() -> LoanWithSchedule | None:
            with self.storage.reading() as uow:
                existing = uow.loans.by_request_id(key)
                if existing is None:
                    return None
                existing.check_retry(customer_id, terms, start_date_given=start_date is not None)
                return _with_schedule(uow, existing, today)

        def create() -> LoanWithSchedule:
            # Insert first: a retry is rare, and the key's unique index refuses it
            # (DuplicateKey), which `_idempotent` answers with the loan created first.
            with self.storage.writing(optimistic=True) as uow:
                loan = Loan.new(uow.loans.reserve_id(), customer_id, terms, today, key)
                if not uow.loans.add(
                    loan,
                    creation_events(loan.id, customer_id, terms, today),
                    creation_entry(loan.id, terms),
                ):
                    raise NotFound("customer", customer_id)
                uow.commit()
            self.events_written()
            # A new loan is its terms: the answer needs no read back.
            position = loan.position(today)
            new_schedule = [ScheduleEntry(i, None) for i in terms.schedule()]
            return LoanWithSchedule(loan, position, schedule_at(position, new_schedule))

        return _idempotent(create, replay)

    def get_loan(self, loan_id: int, as_of: dt.date | None = None) -> LoanWithSchedule:
        _check_id("loan_id", loan_id)
        with self.storage.reading() as uow:
            loan = _loan(uow, loan_id, as_of)
            return _with_schedule(uow, loan, as_of or self.clock.today())

    def get_position(self, loan_id: int, as_of: dt.date | None = None) -> LoanAt:
        """Outstanding, overdue and delinquency at the end of `as_of`: one or two index reads."""
        _check_id("loan_id", loan_id)
        with self.storage.reading() as uow:
            loan = _loan(uow, loan_id, as_of)
            return LoanAt(loan, _position(uow, loan, as_of or self.clock.today()))

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
        with self.storage.reading() as uow:
            # A customer that does not exist is NOT_FOUND, as an unknown loan is
            # for ListPayments, not an empty page: one read by its key.
            if customer_id and uow.customers.get(customer_id) is None:
                raise NotFound("customer", customer_id)
            loans = uow.loans.list(
                customer_id=customer_id or None, status=status, before_id=before_id, limit=limit + 1
            )
            items = [LoanAt(loan, _position(uow, loan, today)) for loan in loans[:limit]]
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
        """A payment of exactly the amount of one or more installments."""
        return self._pay(
            PaymentKind.REGULAR, decide_payment, loan_id, amount, idempotency_key, payment_date
        )

    def pay_off_loan(
        self,
        *,
        loan_id: int,
        amount: int,
        idempotency_key: str,
        payment_date: dt.date | None = None,
    ) -> PaymentResult:
        """Closes the loan early with exactly its payoff quote at the payment date."""
        return self._pay(
            PaymentKind.PAYOFF, decide_payoff, loan_id, amount, idempotency_key, payment_date
        )

    def get_payoff_quote(self, *, loan_id: int, as_of: dt.date | None = None) -> PayoffQuote:
        """What pays the loan off at the end of `as_of` (default today), that day only."""
        view = self.get_position(loan_id, as_of)
        return payoff_quote(
            view.loan.terms,
            view.position.paid_amount,
            view.position.as_of,
            written_off_on=view.loan.written_off_on,
        )

    def _pay(
        self,
        kind: PaymentKind,
        decide: Callable[..., PaymentDecision],
        loan_id: int,
        amount: int,
        idempotency_key: str,
        payment_date: dt.date | None,
    ) -> PaymentResult:
        """One payment of `kind`, decided by `decide` on the loan as read."""
        _check_id("loan_id", loan_id)
        key = _check_key("idempotency_key", idempotency_key, required=True)

        def replay(earlier: Payment | None) -> PaymentResult | None:
            if earlier is None:
                return None
            earlier.check_retry(loan_id, amount, payment_date, kind)
            return PaymentResult(earlier, replayed=True)

        def attempt(uow: UnitOfWork) -> PaymentResult | None:
            """None: the loan changed since an unlocked read; decide again under its lock.
            The key is checked after the lock, so a retry racing its original sees it."""
            slot = uow.payments.slot(loan_id, key)
            if slot.loan is None:
                raise NotFound("loan", loan_id)
            if slot.earlier is not None:
                return replay(slot.earlier)
            decision = decide(
                slot.loan,
                amount=amount,
                payment_date=payment_date,
                idempotency_key=key,
                today=self.clock.today(),
                new_payment_id=uow.payments.next_id,
            )
            recorded = uow.payments.record(
                decision.payment, slot.loan, decision.after, decision.events, decision.entry
            )
            if not recorded:
                return None
            uow.commit()
            return PaymentResult(decision.payment, replayed=False)

        def create() -> PaymentResult:
            with self.storage.writing(optimistic=True) as uow:
                done = attempt(uow)
            if done is None:
                with self.storage.writing(optimistic=False) as uow:
                    done = attempt(uow)
            if done is None:
                raise RuntimeError(f"loan {loan_id} changed under its row lock")
            if not done.replayed:
                self.events_written()
            return done

        def replay_after_conflict() -> PaymentResult | None:
            with self.storage.reading() as uow:
                return replay(uow.payments.by_key(key))

        return _idempotent(create, replay_after_conflict)

    def reverse_payment(
        self,
        *,
        payment_id: int,
        reason: str,
        idempotency_key: str,
        reversal_date: dt.date | None = None,
    ) -> PaymentResult:
        """Reverses a live payment: it stops counting at every date, and the loan's
        later live payments are re-allocated. One locking unit of work: reversals
        are rare, and the loan's whole history is rewritten under its row lock."""
        _check_id("payment_id", payment_id)
        key = _check_key("idempotency_key", idempotency_key, required=True)
        reason = _check_reason("reason", reason)

        def replay(earlier: Payment | None) -> PaymentResult | None:
            if earlier is None:
                return None
            check_reversal_retry(earlier, payment_id, reason, reversal_date)
            return PaymentResult(earlier, replayed=True)

        def create() -> PaymentResult:
            with self.storage.writing(optimistic=False) as uow:
                target = uow.payments.get(payment_id)
                if target is None:
                    raise NotFound("payment", payment_id)
                loan = uow.loans.lock(target.loan_id)
                assert loan is not None  # a payment's loan is never deleted
                # Under the lock: a retry racing its original sees the reversal.
                if (done := replay(uow.payments.by_reversal_key(key))) is not None:
                    return done
                decision = decide_reversal(
                    loan,
                    uow.payments.of_loan(loan.id),
                    payment_id,
                    reason=reason,
                    reversal_date=reversal_date,
                    idempotency_key=key,
                    today=self.clock.today(),
                )
                uow.payments.record_reversal(loan, decision)
                uow.commit()
            self.events_written()
            return PaymentResult(decision.reversed, replayed=False)

        def replay_after_conflict() -> PaymentResult | None:
            with self.storage.reading() as uow:
                return replay(uow.payments.by_reversal_key(key))

        return _idempotent(create, replay_after_conflict)

    def write_off_loan(
        self,
        *,
        loan_id: int,
        reason: str,
        idempotency_key: str,
        write_off_date: dt.date | None = None,
    ) -> WriteOffResult:
        """Writes a loan off as lost; its later payments are recoveries."""
        _check_id("loan_id", loan_id)
        key = _check_key("idempotency_key", idempotency_key, required=True)
        reason = _check_reason("reason", reason)
        today = self.clock.today()

        def replay(earlier: Loan | None) -> WriteOffResult | None:
            if earlier is None:
                return None
            check_write_off_retry(earlier, loan_id, reason, write_off_date)
            return WriteOffResult(LoanAt(earlier, earlier.position(today)), replayed=True)

        def create() -> WriteOffResult:
            with self.storage.writing(optimistic=False) as uow:
                loan = uow.loans.lock(loan_id)
                if loan is None:
                    raise NotFound("loan", loan_id)
                if (done := replay(uow.loans.by_write_off_key(key))) is not None:
                    return done
                decision = decide_write_off(
                    loan,
                    reason=reason,
                    write_off_date=write_off_date,
                    idempotency_key=key,
                    today=today,
                )
                uow.loans.record_write_off(
                    loan, decision.after, decision.events, decision.entry
                )
                uow.commit()
            self.events_written()
            after = decision.after
            return WriteOffResult(LoanAt(after, after.position(today)), replayed=False)

        def replay_after_conflict() -> WriteOffResult | None:
            with self.storage.reading() as uow:
                return replay(uow.loans.by_write_off_key(key))

        return _idempotent(create, replay_after_conflict)

    def list_payments(
        self, *, loan_id: int, page_size: int = 0, page_token: str = ""
    ) -> Page[Payment]:
        _check_id("loan_id", loan_id)
        limit = pagination.page_size(page_size)
        after_id = pagination.decode_token(page_token)
        with self.storage.reading() as uow:
            _loan(uow, loan_id)
            found = uow.payments.list(loan_id, after_id=after_id, limit=limit + 1)
        token = pagination.encode_token(found[limit - 1].id) if len(found) > limit else ""
        return Page(found[:limit], token)


def _loan(uow: UnitOfWork, loan_id: int, as_of: dt.date | None = None) -> Loan:
    """The loan; a read dated (`as_of`) before its start is refused: it did not
    exist yet. A read at the business date answers even before a future start."""
    loan = uow.loans.get(loan_id)
    if loan is None:
        raise NotFound("loan", loan_id)
    if as_of is not None:
        check_read_date(loan.terms, as_of)
    return loan


def _position(uow: UnitOfWork, loan: Loan, as_of: dt.date) -> Position:
    """The loan at the end of `as_of`: from the loan alone unless `as_of` is
    before its latest payment, then one index seek into its payments."""
    if loan.knows_paid_amount_at(as_of):
        return loan.position(as_of)
    return loan.position(as_of, uow.loans.paid_amount_at(loan.id, as_of))


def _with_schedule(uow: UnitOfWork, loan: Loan, as_of: dt.date) -> LoanWithSchedule:
    position = _position(uow, loan, as_of)
    return LoanWithSchedule(loan, position, schedule_at(position, uow.loans.schedule(loan.id)))
