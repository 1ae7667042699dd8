import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sidecar.gen.mac.v1 import enforcer_pb2 as _enforcer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MergeRequest(_message.Message):
    __slots__ = ("workspace_id", "sources", "target")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    sources: _containers.RepeatedCompositeFieldContainer[_enforcer_pb2.Contact]
    target: _enforcer_pb2.Contact
    def __init__(self, workspace_id: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[_enforcer_pb2.Contact, _Mapping]]] = ..., target: _Optional[_Union[_enforcer_pb2.Contact, _Mapping]] = ...) -> None: ...

class MergeResponse(_message.Message):
    __slots__ = ("contact_key", "folded", "uncounted", "usage")
    CONTACT_KEY_FIELD_NUMBER: _ClassVar[int]
    FOLDED_FIELD_NUMBER: _ClassVar[int]
    UNCOUNTED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    contact_key: str
    folded: int
    uncounted: int
    usage: _enforcer_pb2.Usage
    def __init__(self, contact_key: _Optional[str] = ..., folded: _Optional[int] = ..., uncounted: _Optional[int] = ..., usage: _Optional[_Union[_enforcer_pb2.Usage, _Mapping]] = ...) -> None: ...

class SetExemptRequest(_message.Message):
    __slots__ = ("workspace_id", "contacts", "exempt")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    EXEMPT_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    contacts: _containers.RepeatedCompositeFieldContainer[_enforcer_pb2.Contact]
    exempt: bool
    def __init__(self, workspace_id: _Optional[str] = ..., contacts: _Optional[_Iterable[_Union[_enforcer_pb2.Contact, _Mapping]]] = ..., exempt: _Optional[bool] = ...) -> None: ...

class SetExemptResponse(_message.Message):
    __slots__ = ("contact_keys",)
    CONTACT_KEYS_FIELD_NUMBER: _ClassVar[int]
    contact_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, contact_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class SetSubscriptionRequest(_message.Message):
    __slots__ = ("workspace_id", "plan", "packs", "custom_limit", "timezone", "starts_at", "platform_version", "shadow_mode", "default_region", "thresholds", "update_mask", "overage_percent", "flood_guard")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PACKS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MODE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REGION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FLOOD_GUARD_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    plan: str
    packs: int
    custom_limit: int
    timezone: str
    starts_at: _timestamp_pb2.Timestamp
    platform_version: str
    shadow_mode: bool
    default_region: str
    thresholds: _containers.RepeatedScalarFieldContainer[int]
    update_mask: _field_mask_pb2.FieldMask
    overage_percent: int
    flood_guard: FloodGuard
    def __init__(self, workspace_id: _Optional[str] = ..., plan: _Optional[str] = ..., packs: _Optional[int] = ..., custom_limit: _Optional[int] = ..., timezone: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., platform_version: _Optional[str] = ..., shadow_mode: _Optional[bool] = ..., default_region: _Optional[str] = ..., thresholds: _Optional[_Iterable[int]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., overage_percent: _Optional[int] = ..., flood_guard: _Optional[_Union[FloodGuard, _Mapping]] = ...) -> None: ...

class FloodGuard(_message.Message):
    __slots__ = ("new_per_minute", "action")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[FloodGuard.Action]
        ACTION_FLAG: _ClassVar[FloodGuard.Action]
        ACTION_HOLD: _ClassVar[FloodGuard.Action]
    ACTION_UNSPECIFIED: FloodGuard.Action
    ACTION_FLAG: FloodGuard.Action
    ACTION_HOLD: FloodGuard.Action
    NEW_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    new_per_minute: int
    action: FloodGuard.Action
    def __init__(self, new_per_minute: _Optional[int] = ..., action: _Optional[_Union[FloodGuard.Action, str]] = ...) -> None: ...

class GetSubscriptionRequest(_message.Message):
    __slots__ = ("workspace_id",)
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    def __init__(self, workspace_id: _Optional[str] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("workspace_id", "plan", "packs", "custom_limit", "timezone", "starts_at", "platform_version", "shadow_mode", "effective_limit", "is_default", "trial_plan", "trial_limit", "trial_ends_at", "updated_at", "default_region", "thresholds", "default_thresholds", "overage_percent", "flood_guard")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PACKS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MODE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    TRIAL_PLAN_FIELD_NUMBER: _ClassVar[int]
    TRIAL_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REGION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    FLOOD_GUARD_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    plan: str
    packs: int
    custom_limit: int
    timezone: str
    starts_at: _timestamp_pb2.Timestamp
    platform_version: str
    shadow_mode: bool
    effective_limit: int
    is_default: bool
    trial_plan: str
    trial_limit: int
    trial_ends_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    default_region: str
    thresholds: _containers.RepeatedScalarFieldContainer[int]
    default_thresholds: bool
    overage_percent: int
    flood_guard: FloodGuard
    def __init__(self, workspace_id: _Optional[str] = ..., plan: _Optional[str] = ..., packs: _Optional[int] = ..., custom_limit: _Optional[int] = ..., timezone: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., platform_version: _Optional[str] = ..., shadow_mode: _Optional[bool] = ..., effective_limit: _Optional[int] = ..., is_default: _Optional[bool] = ..., trial_plan: _Optional[str] = ..., trial_limit: _Optional[int] = ..., trial_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., default_region: _Optional[str] = ..., thresholds: _Optional[_Iterable[int]] = ..., default_thresholds: _Optional[bool] = ..., overage_percent: _Optional[int] = ..., flood_guard: _Optional[_Union[FloodGuard, _Mapping]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("workspace_id", "period")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    period: str
    def __init__(self, workspace_id: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class PeriodCount(_message.Message):
    __slots__ = ("period", "active", "limit")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    period: str
    active: int
    limit: int
    def __init__(self, period: _Optional[str] = ..., active: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("usage", "history", "recorded", "channels", "days", "forecast_active", "closed", "closed_at", "flood_guard", "last_flood_at")
    USAGE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    FORECAST_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    FLOOD_GUARD_FIELD_NUMBER: _ClassVar[int]
    LAST_FLOOD_AT_FIELD_NUMBER: _ClassVar[int]
    usage: _enforcer_pb2.Usage
    history: _containers.RepeatedCompositeFieldContainer[PeriodCount]
    recorded: bool
    channels: _containers.RepeatedCompositeFieldContainer[ChannelCount]
    days: _containers.RepeatedCompositeFieldContainer[DayCount]
    forecast_active: int
    closed: bool
    closed_at: _timestamp_pb2.Timestamp
    flood_guard: FloodGuard
    last_flood_at: _timestamp_pb2.Timestamp
    def __init__(self, usage: _Optional[_Union[_enforcer_pb2.Usage, _Mapping]] = ..., history: _Optional[_Iterable[_Union[PeriodCount, _Mapping]]] = ..., recorded: _Optional[bool] = ..., channels: _Optional[_Iterable[_Union[ChannelCount, _Mapping]]] = ..., days: _Optional[_Iterable[_Union[DayCount, _Mapping]]] = ..., forecast_active: _Optional[int] = ..., closed: _Optional[bool] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., flood_guard: _Optional[_Union[FloodGuard, _Mapping]] = ..., last_flood_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChannelCount(_message.Message):
    __slots__ = ("channel", "active")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    active: int
    def __init__(self, channel: _Optional[str] = ..., active: _Optional[int] = ...) -> None: ...

class DayCount(_message.Message):
    __slots__ = ("date", "admitted")
    DATE_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    date: str
    admitted: int
    def __init__(self, date: _Optional[str] = ..., admitted: _Optional[int] = ...) -> None: ...

class ListActiveContactsRequest(_message.Message):
    __slots__ = ("workspace_id", "period", "page_token", "page_size")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    period: str
    page_token: str
    page_size: int
    def __init__(self, workspace_id: _Optional[str] = ..., period: _Optional[str] = ..., page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListActiveContactsResponse(_message.Message):
    __slots__ = ("contact_keys", "next_page_token", "total", "period")
    CONTACT_KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    contact_keys: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    total: int
    period: str
    def __init__(self, contact_keys: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ..., period: _Optional[str] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("workspace_id", "after_id")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    after_id: str
    def __init__(self, workspace_id: _Optional[str] = ..., after_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "workspace_id", "type", "period", "threshold_percent", "active", "limit", "at", "plan", "packs", "overage", "trial_plan", "trial_ends_at")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Event.Type]
        TYPE_THRESHOLD_CROSSED: _ClassVar[Event.Type]
        TYPE_LIMIT_REACHED: _ClassVar[Event.Type]
        TYPE_TRIAL_STARTED: _ClassVar[Event.Type]
        TYPE_TRIAL_ENDED: _ClassVar[Event.Type]
        TYPE_IDENTITY_CONFLICT: _ClassVar[Event.Type]
        TYPE_OVERAGE_STARTED: _ClassVar[Event.Type]
        TYPE_PERIOD_CLOSED: _ClassVar[Event.Type]
        TYPE_FLOOD_DETECTED: _ClassVar[Event.Type]
    TYPE_UNSPECIFIED: Event.Type
    TYPE_THRESHOLD_CROSSED: Event.Type
    TYPE_LIMIT_REACHED: Event.Type
    TYPE_TRIAL_STARTED: Event.Type
    TYPE_TRIAL_ENDED: Event.Type
    TYPE_IDENTITY_CONFLICT: Event.Type
    TYPE_OVERAGE_STARTED: Event.Type
    TYPE_PERIOD_CLOSED: Event.Type
    TYPE_FLOOD_DETECTED: Event.Type
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PACKS_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_PLAN_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    workspace_id: str
    type: Event.Type
    period: str
    threshold_percent: int
    active: int
    limit: int
    at: _timestamp_pb2.Timestamp
    plan: str
    packs: int
    overage: int
    trial_plan: str
    trial_ends_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., type: _Optional[_Union[Event.Type, str]] = ..., period: _Optional[str] = ..., threshold_percent: _Optional[int] = ..., active: _Optional[int] = ..., limit: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan: _Optional[str] = ..., packs: _Optional[int] = ..., overage: _Optional[int] = ..., trial_plan: _Optional[str] = ..., trial_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListStatementsRequest(_message.Message):
    __slots__ = ("period", "page_size", "page_token")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    period: str
    page_size: int
    page_token: str
    def __init__(self, period: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStatementsResponse(_message.Message):
    __slots__ = ("statements", "next_page_token")
    STATEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statements: _containers.RepeatedCompositeFieldContainer[Statement]
    next_page_token: str
    def __init__(self, statements: _Optional[_Iterable[_Union[Statement, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Statement(_message.Message):
    __slots__ = ("workspace_id", "period", "period_start", "period_end", "active", "limit", "plan", "packs", "trial_plan", "trial_ends_at", "overage", "closed_at")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    PACKS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_PLAN_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    OVERAGE_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    period: str
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    active: int
    limit: int
    plan: str
    packs: int
    trial_plan: str
    trial_ends_at: _timestamp_pb2.Timestamp
    overage: int
    closed_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace_id: _Optional[str] = ..., period: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[int] = ..., limit: _Optional[int] = ..., plan: _Optional[str] = ..., packs: _Optional[int] = ..., trial_plan: _Optional[str] = ..., trial_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overage: _Optional[int] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ForgetRequest(_message.Message):
    __slots__ = ("workspace_id", "contact")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    contact: _enforcer_pb2.Contact
    def __init__(self, workspace_id: _Optional[str] = ..., contact: _Optional[_Union[_enforcer_pb2.Contact, _Mapping]] = ...) -> None: ...

class ForgetResponse(_message.Message):
    __slots__ = ("forgotten", "identifiers_removed", "periods")
    FORGOTTEN_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    PERIODS_FIELD_NUMBER: _ClassVar[int]
    forgotten: bool
    identifiers_removed: int
    periods: int
    def __init__(self, forgotten: _Optional[bool] = ..., identifiers_removed: _Optional[int] = ..., periods: _Optional[int] = ...) -> None: ...

class ListAuditRecordsRequest(_message.Message):
    __slots__ = ("workspace_id", "since", "page_size", "page_token")
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace_id: str
    since: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, workspace_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditRecordsResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("id", "at", "admin", "method", "workspace_id", "changed", "changes")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    id: str
    at: _timestamp_pb2.Timestamp
    admin: str
    method: str
    workspace_id: str
    changed: bool
    changes: _containers.RepeatedCompositeFieldContainer[AuditChange]
    def __init__(self, id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., admin: _Optional[str] = ..., method: _Optional[str] = ..., workspace_id: _Optional[str] = ..., changed: _Optional[bool] = ..., changes: _Optional[_Iterable[_Union[AuditChange, _Mapping]]] = ...) -> None: ...

class AuditChange(_message.Message):
    __slots__ = ("field", "before", "after")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    field: str
    before: str
    after: str
    def __init__(self, field: _Optional[str] = ..., before: _Optional[str] = ..., after: _Optional[str] = ...) -> None: ...
