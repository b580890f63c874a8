from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Account(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_UNSPECIFIED: _ClassVar[Account]
    ACCOUNT_LOAN_PORTFOLIO: _ClassVar[Account]
    ACCOUNT_CASH: _ClassVar[Account]
    ACCOUNT_INTEREST_INCOME: _ClassVar[Account]
    ACCOUNT_WRITE_OFF_EXPENSE: _ClassVar[Account]
    ACCOUNT_RECOVERY_INCOME: _ClassVar[Account]

class JournalEntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOURNAL_ENTRY_KIND_UNSPECIFIED: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_LOAN_CREATED: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_PAYMENT: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_PAYOFF: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_REVERSAL: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_WRITE_OFF: _ClassVar[JournalEntryKind]
    JOURNAL_ENTRY_KIND_RECOVERY: _ClassVar[JournalEntryKind]
ACCOUNT_UNSPECIFIED: Account
ACCOUNT_LOAN_PORTFOLIO: Account
ACCOUNT_CASH: Account
ACCOUNT_INTEREST_INCOME: Account
ACCOUNT_WRITE_OFF_EXPENSE: Account
ACCOUNT_RECOVERY_INCOME: Account
JOURNAL_ENTRY_KIND_UNSPECIFIED: JournalEntryKind
JOURNAL_ENTRY_KIND_LOAN_CREATED: JournalEntryKind
JOURNAL_ENTRY_KIND_PAYMENT: JournalEntryKind
JOURNAL_ENTRY_KIND_PAYOFF: JournalEntryKind
JOURNAL_ENTRY_KIND_REVERSAL: JournalEntryKind
JOURNAL_ENTRY_KIND_WRITE_OFF: JournalEntryKind
JOURNAL_ENTRY_KIND_RECOVERY: JournalEntryKind

class JournalLine(_message.Message):
    __slots__ = ("account", "debit_amount", "credit_amount")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    debit_amount: int
    credit_amount: int
    def __init__(self, account: _Optional[_Union[Account, str]] = ..., debit_amount: _Optional[int] = ..., credit_amount: _Optional[int] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("id", "loan_id", "entry_date", "kind", "payment_id", "currency_code", "lines")
    ID_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_DATE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    id: int
    loan_id: int
    entry_date: _date_pb2.Date
    kind: JournalEntryKind
    payment_id: int
    currency_code: str
    lines: _containers.RepeatedCompositeFieldContainer[JournalLine]
    def __init__(self, id: _Optional[int] = ..., loan_id: _Optional[int] = ..., entry_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., kind: _Optional[_Union[JournalEntryKind, str]] = ..., payment_id: _Optional[int] = ..., currency_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[JournalLine, _Mapping]]] = ...) -> None: ...

class ListJournalEntriesRequest(_message.Message):
    __slots__ = ("loan_id", "from_date", "to_date", "page_size", "page_token")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    from_date: _date_pb2.Date
    to_date: _date_pb2.Date
    page_size: int
    page_token: str
    def __init__(self, loan_id: _Optional[int] = ..., from_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., to_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJournalEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[JournalEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[JournalEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTrialBalanceRequest(_message.Message):
    __slots__ = ("as_of", "currency_code")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    as_of: _date_pb2.Date
    currency_code: str
    def __init__(self, as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., currency_code: _Optional[str] = ...) -> None: ...

class TrialBalanceLine(_message.Message):
    __slots__ = ("account", "debit_total", "credit_total", "balance")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    account: Account
    debit_total: int
    credit_total: int
    balance: int
    def __init__(self, account: _Optional[_Union[Account, str]] = ..., debit_total: _Optional[int] = ..., credit_total: _Optional[int] = ..., balance: _Optional[int] = ...) -> None: ...

class GetTrialBalanceResponse(_message.Message):
    __slots__ = ("as_of", "currency_code", "lines", "debit_total", "credit_total")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    DEBIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    as_of: _date_pb2.Date
    currency_code: str
    lines: _containers.RepeatedCompositeFieldContainer[TrialBalanceLine]
    debit_total: int
    credit_total: int
    def __init__(self, as_of: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., currency_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[TrialBalanceLine, _Mapping]]] = ..., debit_total: _Optional[int] = ..., credit_total: _Optional[int] = ...) -> None: ...

class VerifyBooksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BooksDifference(_message.Message):
    __slots__ = ("loan_id", "account", "expected_amount", "posted_amount", "currency_code")
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    POSTED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    loan_id: int
    account: Account
    expected_amount: int
    posted_amount: int
    currency_code: str
    def __init__(self, loan_id: _Optional[int] = ..., account: _Optional[_Union[Account, str]] = ..., expected_amount: _Optional[int] = ..., posted_amount: _Optional[int] = ..., currency_code: _Optional[str] = ...) -> None: ...

class VerifyBooksResponse(_message.Message):
    __slots__ = ("loans_checked", "differences", "agree")
    LOANS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    AGREE_FIELD_NUMBER: _ClassVar[int]
    loans_checked: int
    differences: _containers.RepeatedCompositeFieldContainer[BooksDifference]
    agree: bool
    def __init__(self, loans_checked: _Optional[int] = ..., differences: _Optional[_Iterable[_Union[BooksDifference, _Mapping]]] = ..., agree: _Optional[bool] = ...) -> None: ...
