"""PostgreSQL: a payment or a new loan written as one statement, in autocommit.

The portable path (`Repository`) spends a round trip per step: BEGIN, a row
lock, an INSERT or UPDATE per table, COMMIT. On PostgreSQL the same writes fit
in one statement of data-modifying CTEs, which commits (durably) as one
transaction: the round trips, and the server CPU each of them costs, fall from
seven or more to one.

A payment here is optimistic: the caller read the loan without a lock and
decided with the domain; the UPDATE of the loan is guarded by what it read
(`paid_count` and `status`), every other write hangs on that UPDATE's row, so
a concurrent change makes the whole statement write nothing and the caller
falls back to the locking path. The psycopg2 parameters are bound by
`exec_driver_sql`: these statements are fixed text, nothing to compile.
"""

from __future__ import annotations

import datetime as dt
import functools

from sqlalchemy import Connection

from loanbilling.domain.events import NewEvent
from loanbilling.domain.loan import Installment, LoanStatus, LoanTerms

_EVENT_COLUMNS = (
    "kind, loan_id, customer_id, week_number, business_date, created_at, amount, due_date, "
    "missed_installments, overdue_amount, days_past_due, outstanding_amount, currency_code"
)
# Casts on every value: a VALUES list types its columns by itself, and a column
# of NULLs (due_date of a loan-wide event) would otherwise be text.
_EVENT_ROW = (
    "(%(k{i})s::text, %(l{i})s::bigint, %(c{i})s::bigint, %(w{i})s::int, %(b{i})s::date, "
    "%(now)s::timestamptz, %(a{i})s::bigint, %(d{i})s::date, %(m{i})s::int, %(o{i})s::bigint, "
    "%(p{i})s::int, %(s{i})s::bigint, %(y{i})s::text, %(x{i})s::boolean)"
)


def _event_values(count: int) -> str:
    rows = ", ".join(_EVENT_ROW.format(i=i) for i in range(count))
    return f"(VALUES {rows}) AS e({_EVENT_COLUMNS}, with_payment)"


def _event_params(new_events: list[NewEvent]) -> dict:
    params = {}
    for i, e in enumerate(new_events):
        params.update(
            {
                f"k{i}": e.kind.value,
                f"l{i}": e.loan_id,
                f"c{i}": e.customer_id,
                f"w{i}": e.week_number,
                f"b{i}": e.business_date,
                f"a{i}": e.amount,
                f"d{i}": e.due_date,
                f"m{i}": e.missed_installments,
                f"o{i}": e.overdue_amount,
                f"p{i}": e.days_past_due,
                f"s{i}": e.outstanding_amount,
                f"y{i}": e.currency_code,
                f"x{i}": e.payment_id is not None,
            }
        )
    return params


@functools.cache
def _payment_sql(event_count: int) -> str:
    # Events that name the payment get the id the INSERT just drew.
    return f"""
WITH moved AS (
    UPDATE loans
    SET paid_count = %(last_week)s, outstanding_amount = %(outstanding_after)s,
        last_payment_date = %(payment_date)s, status = %(stored_status)s, updated_at = %(now)s
    WHERE id = %(loan_id)s AND paid_count = %(paid_before)s AND status = %(status_before)s
    RETURNING id
), paid AS (
    INSERT INTO payments (loan_id, amount, currency_code, payment_date, first_week, last_week,
                          idempotency_key, outstanding_after, status_after, created_at)
    SELECT id, %(amount)s, %(currency_code)s, %(payment_date)s, %(first_week)s, %(last_week)s,
           %(key)s, %(outstanding_after)s, %(status_after)s, %(now)s
    FROM moved
    RETURNING id
), settled AS (
    UPDATE installments SET paid_date = %(payment_date)s, payment_id = paid.id
    FROM paid
    WHERE installments.loan_id = %(loan_id)s
      AND installments.week_number BETWEEN %(first_week)s AND %(last_week)s
), told AS (
    INSERT INTO events ({_EVENT_COLUMNS}, payment_id)
    SELECT {_EVENT_COLUMNS}, CASE WHEN e.with_payment THEN paid.id END
    FROM paid, {_event_values(event_count)}
)
SELECT id FROM paid
"""


def record_payment(
    conn: Connection,
    *,
    loan_id: int,
    paid_before: int,
    status_before: LoanStatus,
    amount: int,
    currency_code: str,
    payment_date: dt.date,
    first_week: int,
    last_week: int,
    idempotency_key: str,
    outstanding_after: int,
    status_after: LoanStatus,
    stored_status: LoanStatus,
    new_events: list[NewEvent],
    now: dt.datetime,
) -> int | None:
    """The payment's id, or None when the loan is no longer as read (nothing written).

    `new_events` are written with the new payment's id where theirs is set (any
    placeholder): the id does not exist before the statement runs.
    """
    params = {
        "loan_id": loan_id,
        "paid_before": paid_before,
        "status_before": status_before.value,
        "amount": amount,
        "currency_code": currency_code,
        "payment_date": payment_date,
        "first_week": first_week,
        "last_week": last_week,
        "key": idempotency_key,
        "outstanding_after": outstanding_after,
        "status_after": status_after.value,
        "stored_status": stored_status.value,
        "now": now,
        **_event_params(new_events),
    }
    row = conn.exec_driver_sql(_payment_sql(len(new_events)), params).first()
    return row[0] if row else None


@functools.cache
def _loan_sql(event_count: int) -> str:
    # The installments are the domain's schedule, passed as two arrays (due dates
    # are LoanTerms.due_date: the start plus 7 days a week); the customer's row
    # is the INSERT's source, so an unknown customer writes nothing.
    return f"""
WITH created AS (
    INSERT INTO loans (customer_id, principal_amount, interest_rate_bps, weeks, start_date,
                       currency_code, delinquency_threshold, interest_amount, total_amount,
                       weekly_payment, paid_count, outstanding_amount, status, request_id,
                       created_at, updated_at)
    SELECT id, %(principal_amount)s, %(interest_rate_bps)s, %(weeks)s, %(start_date)s,
           %(currency_code)s, %(delinquency_threshold)s, %(interest_amount)s, %(total_amount)s,
           %(weekly_payment)s, 0, %(total_amount)s, %(status)s, %(request_id)s, %(now)s, %(now)s
    FROM customers WHERE id = %(customer_id)s
    RETURNING id
), scheduled AS (
    INSERT INTO installments (loan_id, week_number, due_date, amount, principal_amount,
                              interest_amount)
    SELECT created.id, s.week, %(start_date)s::date + 7 * s.week::int, s.amount,
           s.amount - s.interest, s.interest
    FROM created,
         unnest(%(amounts)s::bigint[], %(interests)s::bigint[])
             WITH ORDINALITY AS s(amount, interest, week)
), told AS (
    INSERT INTO events ({_EVENT_COLUMNS})
    SELECT e.kind, created.id, {_EVENT_COLUMNS.split(", ", 2)[2]}
    FROM created, {_event_values(event_count)}
)
SELECT id FROM created
"""


def _int_array(values) -> str:
    """A PostgreSQL array literal: one string to bind instead of one parameter per value."""
    return "{" + ",".join(str(v) for v in values) + "}"


def add_loan(
    conn: Connection,
    *,
    customer_id: int,
    terms: LoanTerms,
    schedule: list[Installment],
    status: LoanStatus,
    request_id: str | None,
    new_events: list[NewEvent],
    now: dt.datetime,
) -> int | None:
    """The new loan's id, or None when the customer does not exist (nothing written).

    `new_events` are written for the new loan, whatever loan id they carry.
    """
    params = {
        "customer_id": customer_id,
        "principal_amount": terms.principal_amount,
        "interest_rate_bps": terms.interest_rate_bps,
        "weeks": terms.weeks,
        "start_date": terms.start_date,
        "currency_code": terms.currency_code,
        "delinquency_threshold": terms.delinquency_threshold,
        "interest_amount": terms.interest_amount,
        "total_amount": terms.total_amount,
        "weekly_payment": terms.weekly_payment,
        "status": status.value,
        "request_id": request_id,
        "now": now,
        "amounts": _int_array(line.amount for line in schedule),
        "interests": _int_array(line.interest_amount for line in schedule),
        **_event_params(new_events),
    }
    row = conn.exec_driver_sql(_loan_sql(len(new_events)), params).first()
    return row[0] if row else None
