"""LoanService: converts, delegates to BillingService (where `run` runs it), converts back."""

from __future__ import annotations

from microfin.loanbilling.v1 import loan_service_pb2 as api
from microfin.loanbilling.v1 import loan_service_pb2_grpc

from loanbilling.api import convert
from loanbilling.api.auth import Role
from loanbilling.api.edge import OPEN, Edge, unary
from loanbilling.api.runners import Run
from loanbilling.services.billing import BillingService
from loanbilling.services.sweep import SweepService


class LoanServicer(loan_service_pb2_grpc.LoanServiceServicer):
    def __init__(
        self,
        billing: BillingService,
        sweeps: SweepService,
        run: Run,
        edge: Edge = OPEN,
        *,
        run_bulk: Run,
    ) -> None:
        self.billing = billing
        self.sweeps = sweeps
        self._run = run
        # A sweep's batches are bulk work: never on the loop (loanbilling.api.runners).
        self._run_bulk = run_bulk
        self.edge = edge

    async def _position(self, request):
        """The loan's position at the request's as_of (GetOutstanding, IsDelinquent)."""
        return await self._run(
            self.billing.get_position,
            loan_id=request.loan_id,
            as_of=convert.date_from_pb(request, "as_of"),
        )

    @unary(Role.ADMIN)
    async def CreateCustomer(self, request: api.CreateCustomerRequest, context):
        customer = await self._run(
            self.billing.create_customer,
            name=request.name,
            email=request.email,
            phone=request.phone,
            request_id=request.request_id,
        )
        return api.CreateCustomerResponse(customer=convert.customer_to_pb(customer))

    @unary(Role.READER)
    async def GetCustomer(self, request: api.GetCustomerRequest, context):
        customer = await self._run(self.billing.get_customer, customer_id=request.id)
        return api.GetCustomerResponse(customer=convert.customer_to_pb(customer))

    @unary(Role.ADMIN)
    async def CreateLoan(self, request: api.CreateLoanRequest, context):
        loan = await self._run(
            self.billing.create_loan,
            customer_id=request.customer_id,
            principal_amount=request.principal_amount,
            interest_rate_bps=request.interest_rate_bps,
            weeks=request.weeks,
            start_date=convert.date_from_pb(request, "start_date"),
            currency_code=request.currency_code,
            delinquency_threshold=(
                request.delinquency_threshold if request.HasField("delinquency_threshold") else None
            ),
            prepayment_policy=convert.prepayment_policy_from_pb(request.prepayment_policy),
            payoff_interest=convert.payoff_interest_from_pb(request.payoff_interest),
            request_id=request.request_id,
        )
        return api.CreateLoanResponse(loan=convert.loan_to_pb(loan))

    @unary(Role.READER)
    async def GetLoan(self, request: api.GetLoanRequest, context):
        loan = await self._run(
            self.billing.get_loan,
            loan_id=request.loan_id,
            as_of=convert.date_from_pb(request, "as_of"),
        )
        return api.GetLoanResponse(loan=convert.loan_to_pb(loan))

    @unary(Role.READER)
    async def ListLoans(self, request: api.ListLoansRequest, context):
        page = await self._run(
            self.billing.list_loans,
            customer_id=request.customer_id,
            status=convert.loan_status_from_pb(request.status),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return api.ListLoansResponse(
            loans=[convert.loan_to_pb(item) for item in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(Role.READER)
    async def GetOutstanding(self, request: api.GetOutstandingRequest, context):
        view = await self._position(request)
        position = view.position
        return api.GetOutstandingResponse(
            loan_id=view.loan.id,
            outstanding_amount=position.outstanding_amount,
            outstanding_principal_amount=position.outstanding_principal_amount,
            outstanding_interest_amount=position.outstanding_interest_amount,
            overdue_amount=position.overdue_amount,
            next_installment=convert.next_installment_to_pb(view),
            currency_code=view.loan.terms.currency_code,
            as_of=convert.date_to_pb(position.as_of),
            status=convert.LOAN_STATUS_TO_PB[position.status],
        )

    @unary(Role.READER)
    async def IsDelinquent(self, request: api.IsDelinquentRequest, context):
        view = await self._position(request)
        position = view.position
        return api.IsDelinquentResponse(
            loan_id=view.loan.id,
            delinquent=position.delinquent,
            missed_installments=position.missed_installments,
            overdue_amount=position.overdue_amount,
            days_past_due=position.days_past_due,
            delinquency_threshold=view.loan.terms.delinquency_threshold,
            currency_code=view.loan.terms.currency_code,
            as_of=convert.date_to_pb(position.as_of),
        )

    @unary(Role.COLLECTOR)
    async def MakePayment(self, request: api.MakePaymentRequest, context):
        result = await self._run(
            self.billing.make_payment,
            loan_id=request.loan_id,
            amount=request.amount,
            payment_date=convert.date_from_pb(request, "payment_date"),
            idempotency_key=request.idempotency_key,
        )
        payment = result.payment
        return api.MakePaymentResponse(
            payment=convert.payment_to_pb(payment),
            outstanding_amount=payment.outstanding_after,
            status=convert.LOAN_STATUS_TO_PB[payment.status_after],
            replayed=result.replayed,
        )

    @unary(Role.READER)
    async def GetPayoffQuote(self, request: api.GetPayoffQuoteRequest, context):
        quote = await self._run(
            self.billing.get_payoff_quote,
            loan_id=request.loan_id,
            as_of=convert.date_from_pb(request, "as_of"),
        )
        return convert.payoff_quote_to_pb(request.loan_id, quote)

    @unary(Role.COLLECTOR)
    async def PayOffLoan(self, request: api.PayOffLoanRequest, context):
        result = await self._run(
            self.billing.pay_off_loan,
            loan_id=request.loan_id,
            amount=request.amount,
            payment_date=convert.date_from_pb(request, "payment_date"),
            idempotency_key=request.idempotency_key,
        )
        payment = result.payment
        return api.PayOffLoanResponse(
            payment=convert.payment_to_pb(payment),
            waived_interest_amount=payment.waived_interest_amount,
            status=convert.LOAN_STATUS_TO_PB[payment.status_after],
            replayed=result.replayed,
        )

    @unary(Role.READER)
    async def ListPayments(self, request: api.ListPaymentsRequest, context):
        page = await self._run(
            self.billing.list_payments,
            loan_id=request.loan_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return api.ListPaymentsResponse(
            payments=[convert.payment_to_pb(p) for p in page.items],
            next_page_token=page.next_page_token,
        )

    @unary(Role.ADMIN)
    async def ReversePayment(self, request: api.ReversePaymentRequest, context):
        result = await self._run(
            self.billing.reverse_payment,
            payment_id=request.payment_id,
            reason=request.reason,
            reversal_date=convert.date_from_pb(request, "reversal_date"),
            idempotency_key=request.idempotency_key,
        )
        payment = result.payment
        reversal = payment.reversal
        return api.ReversePaymentResponse(
            payment=convert.payment_to_pb(payment),
            outstanding_amount=reversal.outstanding_after,
            status=convert.LOAN_STATUS_TO_PB[reversal.status_after],
            replayed=result.replayed,
        )

    @unary(Role.ADMIN)
    async def WriteOffLoan(self, request: api.WriteOffLoanRequest, context):
        result = await self._run(
            self.billing.write_off_loan,
            loan_id=request.loan_id,
            reason=request.reason,
            write_off_date=convert.date_from_pb(request, "write_off_date"),
            idempotency_key=request.idempotency_key,
        )
        write_off = result.loan.loan.write_off
        return api.WriteOffLoanResponse(
            loan=convert.loan_to_pb(result.loan),
            written_off_principal_amount=write_off.principal_amount,
            written_off_interest_amount=write_off.interest_amount,
            replayed=result.replayed,
        )

    @unary(Role.ADMIN)
    async def RunDelinquencySweep(self, request: api.RunDelinquencySweepRequest, context):
        report = await self._run_bulk(self.sweeps.run, as_of=convert.date_from_pb(request, "as_of"))
        return api.RunDelinquencySweepResponse(
            as_of=convert.date_to_pb(report.as_of),
            loans_checked=report.loans_checked,
            newly_delinquent=report.newly_delinquent,
            events_written=report.events_written,
            batches=report.batches,
        )
