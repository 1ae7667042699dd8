import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_UNSPECIFIED: _ClassVar[Reason]
    REASON_ALREADY_ACTIVE: _ClassVar[Reason]
    REASON_ADMITTED: _ClassVar[Reason]
    REASON_WITHIN_LIMIT: _ClassVar[Reason]
    REASON_LIMIT_REACHED: _ClassVar[Reason]
    REASON_EXEMPT: _ClassVar[Reason]
    REASON_TRIAL_STARTED: _ClassVar[Reason]
    REASON_BACKEND_UNAVAILABLE: _ClassVar[Reason]
    REASON_RATE_LIMITED: _ClassVar[Reason]
REASON_UNSPECIFIED: Reason
REASON_ALREADY_ACTIVE: Reason
REASON_ADMITTED: Reason
REASON_WITHIN_LIMIT: Reason
REASON_LIMIT_REACHED: Reason
REASON_EXEMPT: Reason
REASON_TRIAL_STARTED: Reason
REASON_BACKEND_UNAVAILABLE: Reason
REASON_RATE_LIMITED: Reason

class Contact(_message.Message):
    __slots__ = ("id", "email", "phone", "channel", "visitor_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    VISITOR_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    phone: str
    channel: str
    visitor_id: str
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., channel: _Optional[str] = ..., visitor_id: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("period", "period_start", "period_end", "active", "limit", "remaining", "plan", "trial_ends_at", "overage")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_FIELD_NUMBER: _ClassVar[int]
    period: str
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    active: int
    limit: int
    remaining: int
    plan: str
    trial_ends_at: _timestamp_pb2.Timestamp
    overage: int
    def __init__(self, period: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[int] = ..., limit: _Optional[int] = ..., remaining: _Optional[int] = ..., plan: _Optional[str] = ..., trial_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overage: _Optional[int] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("allowed", "reason", "contact_key", "identity_conflict", "shadow_denied", "usage", "visitor_merged", "from_local_record", "overage")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONTACT_KEY_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DENIED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    VISITOR_MERGED_FIELD_NUMBER: _ClassVar[int]
    FROM_LOCAL_RECORD_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: Reason
    contact_key: str
    identity_conflict: bool
    shadow_denied: bool
    usage: Usage
    visitor_merged: bool
    from_local_record: bool
    overage: bool
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[_Union[Reason, str]] = ..., contact_key: _Optional[str] = ..., identity_conflict: _Optional[bool] = ..., shadow_denied: _Optional[bool] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., visitor_merged: _Optional[bool] = ..., from_local_record: _Optional[bool] = ..., overage: _Optional[bool] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("workspace_id", "contact", "occurred_at")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    contact: Contact
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace_id: _Optional[str] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("workspace_id", "contact", "occurred_at")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    contact: Contact
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace_id: _Optional[str] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ActivateBatchRequest(_message.Message):
    __slots__ = ("workspace_id", "contacts", "occurred_at")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    contacts: _containers.RepeatedCompositeFieldContainer[Contact]
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace_id: _Optional[str] = ..., contacts: _Optional[_Iterable[_Union[Contact, _Mapping]]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckBatchRequest(_message.Message):
    __slots__ = ("workspace_id", "contacts", "occurred_at")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    contacts: _containers.RepeatedCompositeFieldContainer[Contact]
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace_id: _Optional[str] = ..., contacts: _Optional[_Iterable[_Union[Contact, _Mapping]]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckBatchResponse(_message.Message):
    __slots__ = ("decisions", "admitted", "already_active", "uncounted", "denied", "fits", "usage", "overage")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    UNCOUNTED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    FITS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    admitted: int
    already_active: int
    uncounted: int
    denied: int
    fits: bool
    usage: Usage
    overage: int
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., admitted: _Optional[int] = ..., already_active: _Optional[int] = ..., uncounted: _Optional[int] = ..., denied: _Optional[int] = ..., fits: _Optional[bool] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., overage: _Optional[int] = ...) -> None: ...

class ActivateBatchResponse(_message.Message):
    __slots__ = ("decisions", "usage")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    usage: Usage
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class ActivateStreamRequest(_message.Message):
    __slots__ = ("activate", "check", "tag")
    ACTIVATE_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    activate: ActivateRequest
    check: CheckRequest
    tag: int
    def __init__(self, activate: _Optional[_Union[ActivateRequest, _Mapping]] = ..., check: _Optional[_Union[CheckRequest, _Mapping]] = ..., tag: _Optional[int] = ...) -> None: ...

class ActivateStreamResponse(_message.Message):
    __slots__ = ("decision", "error", "tag")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    error: StreamError
    tag: int
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ..., tag: _Optional[int] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
