from microfin.loanbilling.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamNotificationsRequest(_message.Message):
    __slots__ = ("after_sequence", "loan_id", "customer_id", "kinds")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LOAN_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    loan_id: int
    customer_id: int
    kinds: _containers.RepeatedScalarFieldContainer[_events_pb2.EventKind]
    def __init__(self, after_sequence: _Optional[int] = ..., loan_id: _Optional[int] = ..., customer_id: _Optional[int] = ..., kinds: _Optional[_Iterable[_Union[_events_pb2.EventKind, str]]] = ...) -> None: ...

class StreamNotificationsResponse(_message.Message):
    __slots__ = ("event", "heartbeat")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    heartbeat: Heartbeat
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...
