from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetPortfolioSummaryRequest(_message.Message):
    __slots__ = ("as_of", "currency_code")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    as_of: _date_pb2.Date
    currency_code: str
    def __init__(self, as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., currency_code: _Optional[str] = ...) -> None: ...

class StatusSummary(_message.Message):
    __slots__ = ("loan_count", "principal_amount", "outstanding_amount")
    LOAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    loan_count: int
    principal_amount: int
    outstanding_amount: int
    def __init__(self, loan_count: _Optional[int] = ..., principal_amount: _Optional[int] = ..., outstanding_amount: _Optional[int] = ...) -> None: ...

class RiskBucket(_message.Message):
    __slots__ = ("min_days_past_due", "max_days_past_due", "loan_count", "outstanding_amount")
    MIN_DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    MAX_DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    LOAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    min_days_past_due: int
    max_days_past_due: int
    loan_count: int
    outstanding_amount: int
    def __init__(self, min_days_past_due: _Optional[int] = ..., max_days_past_due: _Optional[int] = ..., loan_count: _Optional[int] = ..., outstanding_amount: _Optional[int] = ...) -> None: ...

class GetPortfolioSummaryResponse(_message.Message):
    __slots__ = ("as_of", "currency_code", "loan_count", "active", "delinquent", "paid", "principal_disbursed", "total_repayable", "collected_amount", "outstanding_amount", "overdue_amount", "due_amount", "portfolio_at_risk", "delinquency_rate_bps", "collection_rate_bps", "waived_interest_amount", "written_off", "written_off_principal_amount", "written_off_interest_amount", "recovered_amount")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    LOAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DELINQUENT_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_DISBURSED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REPAYABLE_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DUE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PORTFOLIO_AT_RISK_FIELD_NUMBER: _ClassVar[int]
    DELINQUENCY_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    WAIVED_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_PRINCIPAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_OFF_INTEREST_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    as_of: _date_pb2.Date
    currency_code: str
    loan_count: int
    active: StatusSummary
    delinquent: StatusSummary
    paid: StatusSummary
    principal_disbursed: int
    total_repayable: int
    collected_amount: int
    outstanding_amount: int
    overdue_amount: int
    due_amount: int
    portfolio_at_risk: _containers.RepeatedCompositeFieldContainer[RiskBucket]
    delinquency_rate_bps: int
    collection_rate_bps: int
    waived_interest_amount: int
    written_off: StatusSummary
    written_off_principal_amount: int
    written_off_interest_amount: int
    recovered_amount: int
    def __init__(self, as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., currency_code: _Optional[str] = ..., loan_count: _Optional[int] = ..., active: _Optional[_Union[StatusSummary, _Mapping]] = ..., delinquent: _Optional[_Union[StatusSummary, _Mapping]] = ..., paid: _Optional[_Union[StatusSummary, _Mapping]] = ..., principal_disbursed: _Optional[int] = ..., total_repayable: _Optional[int] = ..., collected_amount: _Optional[int] = ..., outstanding_amount: _Optional[int] = ..., overdue_amount: _Optional[int] = ..., due_amount: _Optional[int] = ..., portfolio_at_risk: _Optional[_Iterable[_Union[RiskBucket, _Mapping]]] = ..., delinquency_rate_bps: _Optional[int] = ..., collection_rate_bps: _Optional[int] = ..., waived_interest_amount: _Optional[int] = ..., written_off: _Optional[_Union[StatusSummary, _Mapping]] = ..., written_off_principal_amount: _Optional[int] = ..., written_off_interest_amount: _Optional[int] = ..., recovered_amount: _Optional[int] = ...) -> None: ...
