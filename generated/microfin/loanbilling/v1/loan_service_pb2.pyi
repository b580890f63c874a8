from google.type import date_pb2 as _date_pb2
from microfin.loanbilling.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCustomerRequest(_message.Message):
    __slots__ = ("name", "email", "phone", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    email: str
    phone: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: _resources_pb2.Customer
    def __init__(self, customer: _Optional[_Union[_resources_pb2.Customer, _Mapping]] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: _resources_pb2.Customer
    def __init__(self, customer: _Optional[_Union[_resources_pb2.Customer, _Mapping]] = ...) -> None: ...

class CreateLoanRequest(_message.Message):
    __slots__ = ("customer_id", "principal_amount", "interest_rate_bps", "weeks", "start_date", "currency_code", "delinquency_threshold", "request_id", "prepayment_policy", "payoff_interest")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    WEEKS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    DELINQUENCY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREPAYMENT_POLICY_FIELD_NUMBER: _ClassVar[int]
    PAYOFF_INTEREST_FIELD_NUMBER: _ClassVar[int]
    customer_id: int
    principal_amount: int
    interest_rate_bps: int
    weeks: int
    start_date: _date_pb2.Date
    currency_code: str
    delinquency_threshold: int
    request_id: str
    prepayment_policy: _resources_pb2.PrepaymentPolicy
    payoff_interest: _resources_pb2.PayoffInterest
    def __init__(self, customer_id: _Optional[int] = ..., principal_amount: _Optional[int] = ..., interest_rate_bps: _Optional[int] = ..., weeks: _Optional[int] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., currency_code: _Optional[str] = ..., delinquency_threshold: _Optional[int] = ..., request_id: _Optional[str] = ..., prepayment_policy: _Optional[_Union[_resources_pb2.PrepaymentPolicy, str]] = ..., payoff_interest: _Optional[_Union[_resources_pb2.PayoffInterest, str]] = ...) -> None: ...

class CreateLoanResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: _resources_pb2.Loan
    def __init__(self, loan: _Optional[_Union[_resources_pb2.Loan, _Mapping]] = ...) -> None: ...

class GetLoanRequest(_message.Message):
    __slots__ = ("loan_id", "as_of")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    as_of: _date_pb2.Date
    def __init__(self, loan_id: _Optional[int] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class GetLoanResponse(_message.Message):
    __slots__ = ("loan",)
    LOAN_FIELD_NUMBER: _ClassVar[int]
    loan: _resources_pb2.Loan
    def __init__(self, loan: _Optional[_Union[_resources_pb2.Loan, _Mapping]] = ...) -> None: ...

class ListLoansRequest(_message.Message):
    __slots__ = ("customer_id", "status", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: int
    status: _resources_pb2.LoanStatus
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[int] = ..., status: _Optional[_Union[_resources_pb2.LoanStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLoansResponse(_message.Message):
    __slots__ = ("loans", "next_page_token")
    LOANS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    loans: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Loan]
    next_page_token: str
    def __init__(self, loans: _Optional[_Iterable[_Union[_resources_pb2.Loan, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetOutstandingRequest(_message.Message):
    __slots__ = ("loan_id", "as_of")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    as_of: _date_pb2.Date
    def __init__(self, loan_id: _Optional[int] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class GetOutstandingResponse(_message.Message):
    __slots__ = ("loan_id", "outstanding_amount", "outstanding_principal_amount", "outstanding_interest_amount", "overdue_amount", "next_installment", "currency_code", "as_of", "status")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_INSTALLMENT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    outstanding_amount: int
    outstanding_principal_amount: int
    outstanding_interest_amount: int
    overdue_amount: int
    next_installment: _resources_pb2.Installment
    currency_code: str
    as_of: _date_pb2.Date
    status: _resources_pb2.LoanStatus
    def __init__(self, loan_id: _Optional[int] = ..., outstanding_amount: _Optional[int] = ..., outstanding_principal_amount: _Optional[int] = ..., outstanding_interest_amount: _Optional[int] = ..., overdue_amount: _Optional[int] = ..., next_installment: _Optional[_Union[_resources_pb2.Installment, _Mapping]] = ..., currency_code: _Optional[str] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., status: _Optional[_Union[_resources_pb2.LoanStatus, str]] = ...) -> None: ...

class IsDelinquentRequest(_message.Message):
    __slots__ = ("loan_id", "as_of")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    as_of: _date_pb2.Date
    def __init__(self, loan_id: _Optional[int] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class IsDelinquentResponse(_message.Message):
    __slots__ = ("loan_id", "delinquent", "missed_installments", "overdue_amount", "days_past_due", "delinquency_threshold", "currency_code", "as_of")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    DELINQUENT_FIELD_NUMBER: _ClassVar[int]
    MISSED_INSTALLMENTS_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    DELINQUENCY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    delinquent: bool
    missed_installments: int
    overdue_amount: int
    days_past_due: int
    delinquency_threshold: int
    currency_code: str
    as_of: _date_pb2.Date
    def __init__(self, loan_id: _Optional[int] = ..., delinquent: _Optional[bool] = ..., missed_installments: _Optional[int] = ..., overdue_amount: _Optional[int] = ..., days_past_due: _Optional[int] = ..., delinquency_threshold: _Optional[int] = ..., currency_code: _Optional[str] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class MakePaymentRequest(_message.Message):
    __slots__ = ("loan_id", "amount", "payment_date", "idempotency_key")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    amount: int
    payment_date: _date_pb2.Date
    idempotency_key: str
    def __init__(self, loan_id: _Optional[int] = ..., amount: _Optional[int] = ..., payment_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class MakePaymentResponse(_message.Message):
    __slots__ = ("payment", "outstanding_amount", "status", "replayed")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    payment: _resources_pb2.Payment
    outstanding_amount: int
    status: _resources_pb2.LoanStatus
    replayed: bool
    def __init__(self, payment: _Optional[_Union[_resources_pb2.Payment, _Mapping]] = ..., outstanding_amount: _Optional[int] = ..., status: _Optional[_Union[_resources_pb2.LoanStatus, str]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetPayoffQuoteRequest(_message.Message):
    __slots__ = ("loan_id", "as_of")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    as_of: _date_pb2.Date
    def __init__(self, loan_id: _Optional[int] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class GetPayoffQuoteResponse(_message.Message):
    __slots__ = ("loan_id", "payoff_amount", "principal_amount", "interest_amount", "waived_interest_amount", "valid_on", "currency_code")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOFF_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WAIVED_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    VALID_ON_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    payoff_amount: int
    principal_amount: int
    interest_amount: int
    waived_interest_amount: int
    valid_on: _date_pb2.Date
    currency_code: str
    def __init__(self, loan_id: _Optional[int] = ..., payoff_amount: _Optional[int] = ..., principal_amount: _Optional[int] = ..., interest_amount: _Optional[int] = ..., waived_interest_amount: _Optional[int] = ..., valid_on: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., currency_code: _Optional[str] = ...) -> None: ...

class PayOffLoanRequest(_message.Message):
    __slots__ = ("loan_id", "amount", "payment_date", "idempotency_key")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    amount: int
    payment_date: _date_pb2.Date
    idempotency_key: str
    def __init__(self, loan_id: _Optional[int] = ..., amount: _Optional[int] = ..., payment_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PayOffLoanResponse(_message.Message):
    __slots__ = ("payment", "waived_interest_amount", "status", "replayed")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    WAIVED_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    payment: _resources_pb2.Payment
    waived_interest_amount: int
    status: _resources_pb2.LoanStatus
    replayed: bool
    def __init__(self, payment: _Optional[_Union[_resources_pb2.Payment, _Mapping]] = ..., waived_interest_amount: _Optional[int] = ..., status: _Optional[_Union[_resources_pb2.LoanStatus, str]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ListPaymentsRequest(_message.Message):
    __slots__ = ("loan_id", "page_size", "page_token")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    page_size: int
    page_token: str
    def __init__(self, loan_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPaymentsResponse(_message.Message):
    __slots__ = ("payments", "next_page_token")
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Payment]
    next_page_token: str
    def __init__(self, payments: _Optional[_Iterable[_Union[_resources_pb2.Payment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReversePaymentRequest(_message.Message):
    __slots__ = ("payment_id", "reason", "reversal_date", "idempotency_key")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_DATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    payment_id: int
    reason: str
    reversal_date: _date_pb2.Date
    idempotency_key: str
    def __init__(self, payment_id: _Optional[int] = ..., reason: _Optional[str] = ..., reversal_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ReversePaymentResponse(_message.Message):
    __slots__ = ("payment", "outstanding_amount", "status", "replayed")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    payment: _resources_pb2.Payment
    outstanding_amount: int
    status: _resources_pb2.LoanStatus
    replayed: bool
    def __init__(self, payment: _Optional[_Union[_resources_pb2.Payment, _Mapping]] = ..., outstanding_amount: _Optional[int] = ..., status: _Optional[_Union[_resources_pb2.LoanStatus, str]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class WriteOffLoanRequest(_message.Message):
    __slots__ = ("loan_id", "reason", "write_off_date", "idempotency_key")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFF_DATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    reason: str
    write_off_date: _date_pb2.Date
    idempotency_key: str
    def __init__(self, loan_id: _Optional[int] = ..., reason: _Optional[str] = ..., write_off_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class WriteOffLoanResponse(_message.Message):
    __slots__ = ("loan", "written_off_principal_amount", "written_off_interest_amount", "replayed")
    LOAN_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    loan: _resources_pb2.Loan
    written_off_principal_amount: int
    written_off_interest_amount: int
    replayed: bool
    def __init__(self, loan: _Optional[_Union[_resources_pb2.Loan, _Mapping]] = ..., written_off_principal_amount: _Optional[int] = ..., written_off_interest_amount: _Optional[int] = ..., replayed: _Optional[bool] = ...) -> None: ...

class RunDelinquencySweepRequest(_message.Message):
    __slots__ = ("as_of",)
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    as_of: _date_pb2.Date
    def __init__(self, as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class RunDelinquencySweepResponse(_message.Message):
    __slots__ = ("as_of", "loans_checked", "newly_delinquent", "events_written", "batches")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    LOANS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    NEWLY_DELINQUENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    as_of: _date_pb2.Date
    loans_checked: int
    newly_delinquent: int
    events_written: int
    batches: int
    def __init__(self, as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., loans_checked: _Optional[int] = ..., newly_delinquent: _Optional[int] = ..., events_written: _Optional[int] = ..., batches: _Optional[int] = ...) -> None: ...
