"""What a rise of the paid amount settles, and how its cash splits (rules v2).

Allocation is oldest first on the cumulative amount (rules: "The state: the paid
amount A"). A transaction that takes the paid amount from `A1` to `A2` fully
covers installments c(A1) + 1 .. c(A2): none at all when c does not move (a
small recovery, or a payment that a reversal left short of its installment).
Of its cash, the principal part is the fall of the outstanding principal,
(A2 - J(A2)) - (A1 - J(A1)), and the interest part the rest ("Payments":
J(A2) - J(A1) is interest). A payoff also carries the interest it waives,
which raises A without being cash: its interest part is J(A2) - J(A1) - waived.
"""

from __future__ import annotations

from dataclasses import dataclass

from loanbilling.domain.loan import LoanTerms


@dataclass(frozen=True, slots=True)
class Allocation:
    """A move of the paid amount from `paid_amount_before` to `paid_amount_after`.

    `first_week..last_week` are the installments it fully covers; the range is
    empty (`last_week == first_week - 1`) when it covers none.
    """

    paid_amount_before: int
    paid_amount_after: int
    first_week: int
    last_week: int
    principal_amount: int
    interest_amount: int

    @property
    def settled_week_numbers(self) -> list[int]:
        return list(range(self.first_week, self.last_week + 1))


def allocate(
    terms: LoanTerms, paid_amount_before: int, amount: int, waived_interest_amount: int = 0
) -> Allocation:
    """The move that `amount` of cash (plus `waived_interest_amount`, for a payoff)
    makes from `paid_amount_before`.

    The principal part is the fall of the outstanding principal; the interest
    part the rest of the cash, never negative ("Payoff": "interest part = the
    rest (never negative)"). Only a payoff that a reversal of an earlier
    payment re-allocated can reach the floor, by one unit of J's rounding: its
    principal part is then the whole cash.
    """
    paid_amount_after = paid_amount_before + amount + waived_interest_amount
    if not (
        0 <= paid_amount_before
        and 0 <= amount
        and 0 <= waived_interest_amount
        and paid_amount_after <= terms.total_amount
    ):
        raise ValueError(
            f"cannot move the paid amount from {paid_amount_before} by {amount} "
            f"(+{waived_interest_amount} waived) within 0..{terms.total_amount}"
        )
    principal_before = paid_amount_before - terms.interest_part(paid_amount_before)
    principal_after = paid_amount_after - terms.interest_part(paid_amount_after)
    principal = min(principal_after - principal_before, amount)
    return Allocation(
        paid_amount_before=paid_amount_before,
        paid_amount_after=paid_amount_after,
        first_week=terms.installments_covered(paid_amount_before) + 1,
        last_week=terms.installments_covered(paid_amount_after),
        principal_amount=principal,
        interest_amount=amount - principal,
    )
