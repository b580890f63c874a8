"""The hand-worked portfolio's figures, worked out once: tests/integration/
test_portfolio_sql.py writes its loans and reads them through the SQL,
tests/unit/test_portfolio_rules.py computes them with the domain.

Seven IDR loans counted at AS_OF; day numbers are days since a loan's start
and installment k is due on day 7k:
  A 5,000,000 at 10 % over 50 weeks (110,000), from START; weeks 1-5 paid on
    day 35, 6-10 on AS_OF (day 70)
  B 2,000,000 at 10 % over 20 weeks (110,000), from a Friday 3 days before
    START; 4 weeks on day 28, 4 on day 56
  C 1,000,000 interest-free over 10 weeks (100,000), from START; week 1 on day 7
  D 1,000,000 at 12.34 % = 1,123,400 over 3 weeks (374,466 twice, then
    374,468), from START; weeks 1-2 on day 14, week 3 on day 21
  F 3,000,000 at 10 % over 30 weeks (110,000), from a Wednesday 5 days before
    START, threshold 1; weeks 1-9 on day 63
  G 700,000 interest-free over 7 weeks (100,000), from AS_OF; week 1 paid
    ahead on day 0
  H 500,000 at 20 % over 12 weeks (50,000), from START, threshold 3; weeks
    1-7 on day 49
"""

from __future__ import annotations

import datetime as dt

from loanbilling.domain.portfolio import (
    PAR_BUCKETS,
    PortfolioFigures,
    RiskBucketFigures,
    StatusFigures,
)

START = dt.date(2026, 1, 5)
DAY = dt.timedelta(days=1)
AS_OF = START + 70 * DAY  # 2026-03-16, a Monday: installment 10 of loans started at START is due


def buckets(*rows: tuple[int, int]) -> tuple[RiskBucketFigures, ...]:
    return tuple(
        RiskBucketFigures(lo, hi, n, o) for (lo, hi), (n, o) in zip(PAR_BUCKETS, rows, strict=True)
    )


# At AS_OF (paid, installments due before / on or before AS_OF, missed, days past due):
#   A paid 10, due 9/10, missed 0: ACTIVE, owes 4,400,000, overdue 0
#   B day 73: paid 8, due 10/10, missed 2, dpd 73-63=10: DELINQUENT, owes 1,320,000,
#     overdue 220,000
#   C paid 1, due 9/10, missed 8, dpd 70-14=56: DELINQUENT, owes 900,000, overdue 800,000
#   D paid 3 of 3: PAID, owes 0
#   F day 75: paid 9, due 10/10, missed 1 >= threshold 1, dpd 75-70=5: DELINQUENT,
#     owes 2,310,000, overdue 110,000
#   G day 0: paid 1, due 0/0: ACTIVE, owes 600,000
#   H paid 7, due 9/10, missed 2 < threshold 3, dpd 70-56=14: ACTIVE, owes 250,000,
#     overdue 100,000
FIGURES_AT_AS_OF = PortfolioFigures(
    loan_count=7,
    active=StatusFigures(3, 5_000_000 + 700_000 + 500_000, 4_400_000 + 600_000 + 250_000),
    delinquent=StatusFigures(3, 2_000_000 + 1_000_000 + 3_000_000, 1_320_000 + 900_000 + 2_310_000),
    paid=StatusFigures(1, 1_000_000, 0),
    written_off=StatusFigures(0, 0, 0),
    principal_disbursed=13_200_000,
    # 5,500,000 + 2,200,000 + 1,000,000 + 1,123,400 + 3,300,000 + 700,000 + 600,000
    total_repayable=14_423_400,
    # Every payment above: all are dated on or before AS_OF.
    collected_amount=14_423_400 - 9_780_000,
    outstanding_amount=9_780_000,
    overdue_amount=220_000 + 800_000 + 110_000 + 100_000,
    # Installments due on or before AS_OF, by loan: A 10, B 10, C 10, D 3, F 10, G 0, H 10.
    due_amount=1_100_000 + 1_100_000 + 1_000_000 + 1_123_400 + 1_100_000 + 0 + 500_000,
    # Paid toward those: all but G's week 1, which is not due until day 7.
    collected_toward_due=4_643_400 - 100_000,
    portfolio_at_risk=buckets(
        (1, 2_310_000),  # F, 5 days
        (1, 1_320_000),  # B, 10 days
        (1, 250_000),  # H, 14 days: the lower bound is inclusive
        (1, 900_000),  # C, 56 days
    ),
    delinquency_rate_bps=3 * 10_000 // 6,
    collection_rate_bps=4_543_400 * 10_000 // 5_923_400,  # 7670
)
