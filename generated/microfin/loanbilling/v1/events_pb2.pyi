import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_PAYMENT_DUE_SOON: _ClassVar[EventKind]
    EVENT_KIND_INSTALLMENT_MISSED: _ClassVar[EventKind]
    EVENT_KIND_LOAN_DELINQUENT: _ClassVar[EventKind]
    EVENT_KIND_DELINQUENCY_CURED: _ClassVar[EventKind]
    EVENT_KIND_PAYMENT_RECEIVED: _ClassVar[EventKind]
    EVENT_KIND_LOAN_PAID_OFF: _ClassVar[EventKind]
    EVENT_KIND_LOAN_CREATED: _ClassVar[EventKind]
    EVENT_KIND_PAYMENT_REVERSED: _ClassVar[EventKind]
    EVENT_KIND_LOAN_REOPENED: _ClassVar[EventKind]
    EVENT_KIND_LOAN_WRITTEN_OFF: _ClassVar[EventKind]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_PAYMENT_DUE_SOON: EventKind
EVENT_KIND_INSTALLMENT_MISSED: EventKind
EVENT_KIND_LOAN_DELINQUENT: EventKind
EVENT_KIND_DELINQUENCY_CURED: EventKind
EVENT_KIND_PAYMENT_RECEIVED: EventKind
EVENT_KIND_LOAN_PAID_OFF: EventKind
EVENT_KIND_LOAN_CREATED: EventKind
EVENT_KIND_PAYMENT_REVERSED: EventKind
EVENT_KIND_LOAN_REOPENED: EventKind
EVENT_KIND_LOAN_WRITTEN_OFF: EventKind

class Event(_message.Message):
    __slots__ = ("sequence", "kind", "loan_id", "customer_id", "business_date", "create_time", "week_number", "amount", "due_date", "missed_installments", "overdue_amount", "days_past_due", "outstanding_amount", "currency_code", "payment_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    WEEK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    MISSED_INSTALLMENTS_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DAYS_PAST_DUE_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: EventKind
    loan_id: int
    customer_id: int
    business_date: _date_pb2.Date
    create_time: _timestamp_pb2.Timestamp
    week_number: int
    amount: int
    due_date: _date_pb2.Date
    missed_installments: int
    overdue_amount: int
    days_past_due: int
    outstanding_amount: int
    currency_code: str
    payment_id: int
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., loan_id: _Optional[int] = ..., customer_id: _Optional[int] = ..., business_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., week_number: _Optional[int] = ..., amount: _Optional[int] = ..., due_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., missed_installments: _Optional[int] = ..., overdue_amount: _Optional[int] = ..., days_past_due: _Optional[int] = ..., outstanding_amount: _Optional[int] = ..., currency_code: _Optional[str] = ..., payment_id: _Optional[int] = ...) -> None: ...
