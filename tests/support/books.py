"""The invariants the books must satisfy after any scenario, checked in SQL."""

from __future__ import annotations

from sqlalchemy import func, select

from loanbilling.storage.tables import (
    event_numbers,
    events,
    installments,
    loans,
    payments,
    pending_events,
)

LIVE = payments.c.reversal_date.is_(None)


def assert_books_exact(engine) -> dict[str, int]:
    """paid_amount == the sum of the live payments (with the interest payoffs waived)
    and total - it == outstanding >= 0 for every loan; each payment's principal
    and interest add up to it; each installment
    settled at most once and exactly weeks 1..paid_count; events numbered without
    gaps. Returns a few counts for the caller's figures."""
    with engine.connect() as conn:
        paid = dict(
            conn.execute(
                select(
                    payments.c.loan_id,
                    func.sum(payments.c.amount + payments.c.waived_interest_amount),
                )
                .where(LIVE)
                .group_by(payments.c.loan_id)
            ).all()
        )
        settled = dict(
            conn.execute(
                select(installments.c.loan_id, func.count())
                .where(installments.c.payment_id.is_not(None))
                .group_by(installments.c.loan_id)
            ).all()
        )
        rows = conn.execute(
            select(
                loans.c.id,
                loans.c.total_amount,
                loans.c.outstanding_amount,
                loans.c.paid_amount,
                loans.c.paid_count,
            )
        ).all()
        for loan in rows:
            total_paid = int(paid.get(loan.id, 0))
            assert loan.paid_amount == total_paid, loan
            assert loan.total_amount - total_paid == loan.outstanding_amount >= 0, loan
            assert settled.get(loan.id, 0) == loan.paid_count, loan
        split = conn.execute(
            select(func.count())
            .select_from(payments)
            .where(payments.c.principal_amount + payments.c.interest_amount != payments.c.amount)
        ).scalar_one()
        assert split == 0, "a payment's principal and interest do not add up to it"
        # Live payments of a loan settle consecutive weeks from week 1, each exactly
        # once; a reversed one settles none.
        next_week: dict[int, int] = {}
        for loan_id, first, last in conn.execute(
            select(payments.c.loan_id, payments.c.first_week, payments.c.last_week)
            .where(LIVE)
            .order_by(payments.c.loan_id, payments.c.payment_date, payments.c.id)
        ):
            assert first == next_week.get(loan_id, 1), (loan_id, first, last)
            next_week[loan_id] = last + 1
        numbered = (
            conn.execute(select(event_numbers.c.sequence).order_by(event_numbers.c.sequence))
            .scalars()
            .all()
        )
        assert numbered == list(range(1, len(numbered) + 1)), "event sequence has a gap"
        # Every event is either numbered or pending, never both nor neither.
        pending = conn.execute(select(func.count()).select_from(pending_events)).scalar_one()
        both = select(event_numbers.c.event_id).join_from(
            event_numbers, pending_events, pending_events.c.event_id == event_numbers.c.event_id
        )
        assert conn.execute(both).first() is None, "an event is both numbered and pending"
        written = conn.execute(select(func.count()).select_from(events)).scalar_one()
        assert written == len(numbered) + pending, "an event is neither numbered nor pending"
        return {
            "loans": len(rows),
            "payments": conn.execute(select(func.count()).select_from(payments)).scalar_one(),
            "events": len(numbered),
        }
