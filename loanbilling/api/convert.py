"""Protobuf <-> domain conversions, in one place."""

from __future__ import annotations

from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import resources_pb2 as pb

from loanbilling.contract.dates import date_from_pb as date_from_pb  # the servicers use it
from loanbilling.contract.dates import date_to_pb
from loanbilling.domain.customer import Customer
from loanbilling.domain.errors import InvalidArgument
from loanbilling.domain.loan import (
    InstallmentStatus,
    LoanStatus,
    PayoffInterest,
    PrepaymentPolicy,
    ScheduleLine,
)
from loanbilling.domain.payment import Payment, PaymentKind
from loanbilling.domain.payoff import PayoffQuote
from loanbilling.services.billing import LoanAt, LoanWithSchedule

LOAN_STATUS_TO_PB = {
    LoanStatus.ACTIVE: pb.LOAN_STATUS_ACTIVE,
    LoanStatus.DELINQUENT: pb.LOAN_STATUS_DELINQUENT,
    LoanStatus.PAID: pb.LOAN_STATUS_PAID,
    LoanStatus.WRITTEN_OFF: pb.LOAN_STATUS_WRITTEN_OFF,
}
LOAN_STATUS_FROM_PB = {v: k for k, v in LOAN_STATUS_TO_PB.items()}
INSTALLMENT_STATUS_TO_PB = {
    InstallmentStatus.UNPAID: pb.INSTALLMENT_STATUS_UNPAID,
    InstallmentStatus.OVERDUE: pb.INSTALLMENT_STATUS_OVERDUE,
    InstallmentStatus.PAID: pb.INSTALLMENT_STATUS_PAID,
}
PREPAYMENT_POLICY_TO_PB = {
    PrepaymentPolicy.DUE_ONLY: pb.PREPAYMENT_POLICY_DUE_ONLY,
    PrepaymentPolicy.WHOLE_INSTALLMENTS: pb.PREPAYMENT_POLICY_WHOLE_INSTALLMENTS,
}
PREPAYMENT_POLICY_FROM_PB = {v: k for k, v in PREPAYMENT_POLICY_TO_PB.items()}
PAYOFF_INTEREST_TO_PB = {
    PayoffInterest.FULL: pb.PAYOFF_INTEREST_FULL,
    PayoffInterest.WAIVE_UNDUE: pb.PAYOFF_INTEREST_WAIVE_UNDUE,
}
PAYOFF_INTEREST_FROM_PB = {v: k for k, v in PAYOFF_INTEREST_TO_PB.items()}
PAYMENT_KIND_TO_PB = {
    PaymentKind.REGULAR: pb.PAYMENT_KIND_REGULAR,
    PaymentKind.PAYOFF: pb.PAYMENT_KIND_PAYOFF,
    PaymentKind.RECOVERY: pb.PAYMENT_KIND_RECOVERY,
}


def _enum_from_pb(field_name: str, enum_name: str, table: dict, value: int):
    """The domain value of an enum field of a request; None for UNSPECIFIED (0).
    An unknown number (a proto3 enum is open) is INVALID_ARGUMENT naming the field."""
    if value == 0:
        return None
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument.of(field_name, f"{value} is not a {enum_name} value") from None


def loan_status_from_pb(value: int) -> LoanStatus | None:
    return _enum_from_pb("status", "LoanStatus", LOAN_STATUS_FROM_PB, value)


def prepayment_policy_from_pb(value: int) -> PrepaymentPolicy | None:
    """None (the default, DUE_ONLY) for PREPAYMENT_POLICY_UNSPECIFIED."""
    return _enum_from_pb("prepayment_policy", "PrepaymentPolicy", PREPAYMENT_POLICY_FROM_PB, value)


def payoff_interest_from_pb(value: int) -> PayoffInterest | None:
    """None (the default, FULL) for PAYOFF_INTEREST_UNSPECIFIED."""
    return _enum_from_pb("payoff_interest", "PayoffInterest", PAYOFF_INTEREST_FROM_PB, value)


def customer_to_pb(customer: Customer) -> pb.Customer:
    return pb.Customer(
        id=customer.id, name=customer.name, email=customer.email, phone=customer.phone
    )


def schedule_line_to_pb(line: ScheduleLine) -> pb.Installment:
    inst = line.installment
    message = pb.Installment(
        week_number=inst.week_number,
        due_date=date_to_pb(inst.due_date),
        amount=inst.amount,
        principal_amount=inst.principal_amount,
        interest_amount=inst.interest_amount,
        status=INSTALLMENT_STATUS_TO_PB[line.status],
    )
    if line.paid_date is not None:
        message.paid_date.CopyFrom(date_to_pb(line.paid_date))
    return message


def loan_to_pb(view: LoanAt) -> pb.Loan:
    loan, position, terms = view.loan, view.position, view.loan.terms
    message = pb.Loan(
        id=loan.id,
        customer_id=loan.customer_id,
        principal_amount=terms.principal_amount,
        interest_amount=terms.interest_amount,
        total_amount=terms.total_amount,
        interest_rate_bps=terms.interest_rate_bps,
        weeks=terms.weeks,
        weekly_payment=terms.weekly_payment,
        outstanding_amount=position.outstanding_amount,
        status=LOAN_STATUS_TO_PB[position.status],
        start_date=date_to_pb(terms.start_date),
        currency_code=terms.currency_code,
        delinquency_threshold=terms.delinquency_threshold,
        as_of=date_to_pb(position.as_of),
        prepayment_policy=PREPAYMENT_POLICY_TO_PB[terms.prepayment_policy],
        payoff_interest=PAYOFF_INTEREST_TO_PB[terms.payoff_interest],
    )
    if (write_off := loan.write_off) is not None:
        message.write_off_date.CopyFrom(date_to_pb(write_off.on))
        message.write_off_reason = write_off.reason
        message.written_off_principal_amount = write_off.principal_amount
        message.written_off_interest_amount = write_off.interest_amount
    if isinstance(view, LoanWithSchedule):
        message.schedule.extend(schedule_line_to_pb(line) for line in view.schedule)
    return message


def next_installment_to_pb(view: LoanAt) -> pb.Installment | None:
    nxt = view.position.next_installment
    if nxt is None:
        return None
    return pb.Installment(
        week_number=nxt.week_number,
        due_date=date_to_pb(nxt.due_date),
        amount=nxt.amount,
        principal_amount=nxt.principal_amount,
        interest_amount=nxt.interest_amount,
        status=INSTALLMENT_STATUS_TO_PB[view.position.installment_status(nxt.week_number)],
    )


def payment_to_pb(payment: Payment) -> pb.Payment:
    message = pb.Payment(
        id=payment.id,
        loan_id=payment.loan_id,
        amount=payment.amount,
        currency_code=payment.currency_code,
        payment_date=date_to_pb(payment.payment_date),
        settled_week_numbers=payment.settled_week_numbers,
        idempotency_key=payment.idempotency_key,
        outstanding_amount_after=payment.outstanding_after,
        kind=PAYMENT_KIND_TO_PB[payment.kind],
        principal_amount=payment.principal_amount,
        interest_amount=payment.interest_amount,
        waived_interest_amount=payment.waived_interest_amount,
        reversed=not payment.live,
    )
    if (reversal := payment.reversal) is not None:
        message.reversal_date.CopyFrom(date_to_pb(reversal.on))
        message.reversal_reason = reversal.reason
    return message


def payoff_quote_to_pb(loan_id: int, quote: PayoffQuote) -> api.GetPayoffQuoteResponse:
    return api.GetPayoffQuoteResponse(
        loan_id=loan_id,
        payoff_amount=quote.payoff_amount,
        principal_amount=quote.principal_amount,
        interest_amount=quote.interest_amount,
        waived_interest_amount=quote.waived_interest_amount,
        valid_on=date_to_pb(quote.valid_on),
        currency_code=quote.currency_code,
    )
