from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoanStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOAN_STATUS_UNSPECIFIED: _ClassVar[LoanStatus]
    LOAN_STATUS_ACTIVE: _ClassVar[LoanStatus]
    LOAN_STATUS_DELINQUENT: _ClassVar[LoanStatus]
    LOAN_STATUS_PAID: _ClassVar[LoanStatus]
    LOAN_STATUS_WRITTEN_OFF: _ClassVar[LoanStatus]

class PrepaymentPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPAYMENT_POLICY_UNSPECIFIED: _ClassVar[PrepaymentPolicy]
    PREPAYMENT_POLICY_DUE_ONLY: _ClassVar[PrepaymentPolicy]
    PREPAYMENT_POLICY_WHOLE_INSTALLMENTS: _ClassVar[PrepaymentPolicy]

class PayoffInterest(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOFF_INTEREST_UNSPECIFIED: _ClassVar[PayoffInterest]
    PAYOFF_INTEREST_FULL: _ClassVar[PayoffInterest]
    PAYOFF_INTEREST_WAIVE_UNDUE: _ClassVar[PayoffInterest]

class PaymentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_KIND_UNSPECIFIED: _ClassVar[PaymentKind]
    PAYMENT_KIND_REGULAR: _ClassVar[PaymentKind]
    PAYMENT_KIND_PAYOFF: _ClassVar[PaymentKind]
    PAYMENT_KIND_RECOVERY: _ClassVar[PaymentKind]

class InstallmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTALLMENT_STATUS_UNSPECIFIED: _ClassVar[InstallmentStatus]
    INSTALLMENT_STATUS_UNPAID: _ClassVar[InstallmentStatus]
    INSTALLMENT_STATUS_OVERDUE: _ClassVar[InstallmentStatus]
    INSTALLMENT_STATUS_PAID: _ClassVar[InstallmentStatus]
LOAN_STATUS_UNSPECIFIED: LoanStatus
LOAN_STATUS_ACTIVE: LoanStatus
LOAN_STATUS_DELINQUENT: LoanStatus
LOAN_STATUS_PAID: LoanStatus
LOAN_STATUS_WRITTEN_OFF: LoanStatus
PREPAYMENT_POLICY_UNSPECIFIED: PrepaymentPolicy
PREPAYMENT_POLICY_DUE_ONLY: PrepaymentPolicy
PREPAYMENT_POLICY_WHOLE_INSTALLMENTS: PrepaymentPolicy
PAYOFF_INTEREST_UNSPECIFIED: PayoffInterest
PAYOFF_INTEREST_FULL: PayoffInterest
PAYOFF_INTEREST_WAIVE_UNDUE: PayoffInterest
PAYMENT_KIND_UNSPECIFIED: PaymentKind
PAYMENT_KIND_REGULAR: PaymentKind
PAYMENT_KIND_PAYOFF: PaymentKind
PAYMENT_KIND_RECOVERY: PaymentKind
INSTALLMENT_STATUS_UNSPECIFIED: InstallmentStatus
INSTALLMENT_STATUS_UNPAID: InstallmentStatus
INSTALLMENT_STATUS_OVERDUE: InstallmentStatus
INSTALLMENT_STATUS_PAID: InstallmentStatus

class Customer(_message.Message):
    __slots__ = ("id", "name", "email", "phone")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    email: str
    phone: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ...) -> None: ...

class Installment(_message.Message):
    __slots__ = ("week_number", "due_date", "amount", "principal_amount", "interest_amount", "status", "paid_date")
    WEEK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAID_DATE_FIELD_NUMBER: _ClassVar[int]
    week_number: int
    due_date: _date_pb2.Date
    amount: int
    principal_amount: int
    interest_amount: int
    status: InstallmentStatus
    paid_date: _date_pb2.Date
    def __init__(self, week_number: _Optional[int] = ..., due_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., amount: _Optional[int] = ..., principal_amount: _Optional[int] = ..., interest_amount: _Optional[int] = ..., status: _Optional[_Union[InstallmentStatus, str]] = ..., paid_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class Loan(_message.Message):
    __slots__ = ("id", "customer_id", "principal_amount", "interest_amount", "total_amount", "interest_rate_bps", "weeks", "weekly_payment", "outstanding_amount", "status", "start_date", "currency_code", "delinquency_threshold", "schedule", "as_of", "prepayment_policy", "payoff_interest", "write_off_date", "write_off_reason", "written_off_principal_amount", "written_off_interest_amount")
    ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    WEEKS_FIELD_NUMBER: _ClassVar[int]
    WEEKLY_PAYMENT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    DELINQUENCY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    PREPAYMENT_POLICY_FIELD_NUMBER: _ClassVar[int]
    PAYOFF_INTEREST_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFF_DATE_FIELD_NUMBER: _ClassVar[int]
    WRITE_OFF_REASON_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    id: int
    customer_id: int
    principal_amount: int
    interest_amount: int
    total_amount: int
    interest_rate_bps: int
    weeks: int
    weekly_payment: int
    outstanding_amount: int
    status: LoanStatus
    start_date: _date_pb2.Date
    currency_code: str
    delinquency_threshold: int
    schedule: _containers.RepeatedCompositeFieldContainer[Installment]
    as_of: _date_pb2.Date
    prepayment_policy: PrepaymentPolicy
    payoff_interest: PayoffInterest
    write_off_date: _date_pb2.Date
    write_off_reason: str
    written_off_principal_amount: int
    written_off_interest_amount: int
    def __init__(self, id: _Optional[int] = ..., customer_id: _Optional[int] = ..., principal_amount: _Optional[int] = ..., interest_amount: _Optional[int] = ..., total_amount: _Optional[int] = ..., interest_rate_bps: _Optional[int] = ..., weeks: _Optional[int] = ..., weekly_payment: _Optional[int] = ..., outstanding_amount: _Optional[int] = ..., status: _Optional[_Union[LoanStatus, str]] = ..., start_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., currency_code: _Optional[str] = ..., delinquency_threshold: _Optional[int] = ..., schedule: _Optional[_Iterable[_Union[Installment, _Mapping]]] = ..., as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., prepayment_policy: _Optional[_Union[PrepaymentPolicy, str]] = ..., payoff_interest: _Optional[_Union[PayoffInterest, str]] = ..., write_off_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., write_off_reason: _Optional[str] = ..., written_off_principal_amount: _Optional[int] = ..., written_off_interest_amount: _Optional[int] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("id", "loan_id", "amount", "currency_code", "payment_date", "settled_week_numbers", "idempotency_key", "outstanding_amount_after", "kind", "principal_amount", "interest_amount", "waived_interest_amount", "reversed", "reversal_date", "reversal_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_DATE_FIELD_NUMBER: _ClassVar[int]
    SETTLED_WEEK_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_AFTER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WAIVED_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REVERSED_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_DATE_FIELD_NUMBER: _ClassVar[int]
    REVERSAL_REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    loan_id: int
    amount: int
    currency_code: str
    payment_date: _date_pb2.Date
    settled_week_numbers: _containers.RepeatedScalarFieldContainer[int]
    idempotency_key: str
    outstanding_amount_after: int
    kind: PaymentKind
    principal_amount: int
    interest_amount: int
    waived_interest_amount: int
    reversed: bool
    reversal_date: _date_pb2.Date
    reversal_reason: str
    def __init__(self, id: _Optional[int] = ..., loan_id: _Optional[int] = ..., amount: _Optional[int] = ..., currency_code: _Optional[str] = ..., payment_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., settled_week_numbers: _Optional[_Iterable[int]] = ..., idempotency_key: _Optional[str] = ..., outstanding_amount_after: _Optional[int] = ..., kind: _Optional[_Union[PaymentKind, str]] = ..., principal_amount: _Optional[int] = ..., interest_amount: _Optional[int] = ..., waived_interest_amount: _Optional[int] = ..., reversed: _Optional[bool] = ..., reversal_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., reversal_reason: _Optional[str] = ...) -> None: ...
