"""One meaning per code: decide.lua's CODE and FLAG tables, the codec, ``Reason`` and the proto
enum agree."""

from __future__ import annotations

import re
from importlib import resources

from sidecar.domain.decision import Reason
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.storage import codec

DECIDE = (resources.files("sidecar.storage") / "lua" / "decide.lua").read_text()


def lua_table(name: str) -> dict[str, int]:
    body = re.search(rf"^local {name} = \{{(.*?)^\}}", DECIDE, re.S | re.M)
    assert body, f"decide.lua has no {name} table"
    return {k: int(v) for k, v in re.findall(r"^\s*([A-Z_]+) = (\d+),", body.group(1), re.M)}


def test_every_lua_code_means_the_reason_of_its_name() -> None:
    codes = lua_table("CODE")
    assert sorted(codes.values()) == sorted(codec.CODES)
    for name, code in codes.items():
        reason, shadowed = codec.CODES[code]
        if name == "SHADOW_ALLOWED":
            assert (reason, shadowed) == (Reason.LIMIT_REACHED, True)
        elif name == "SHADOW_RATE_LIMITED":
            assert (reason, shadowed) == (Reason.RATE_LIMITED, True)
        else:
            assert (reason.name, shadowed) == (name, False)


def test_the_lua_flags_are_the_codec_flags() -> None:
    assert lua_table("FLAG") == {
        "CONFLICT": codec.FLAG_CONFLICT,
        "VISITOR_MERGED": codec.FLAG_VISITOR_MERGED,
        "OVERAGE": codec.FLAG_OVERAGE,
    }


def test_reason_values_are_the_proto_enum_values() -> None:
    assert {f"REASON_{r.name}": r.value for r in Reason} == {
        name: value for name, value in pb.Reason.items() if value != 0
    }


def test_every_event_a_script_records_is_a_type_of_the_proto_enum() -> None:
    lua = resources.files("sidecar.storage") / "lua"
    texts = [p.read_text() for p in (*lua.iterdir(), *(lua / "lib").iterdir()) if p.is_file()]
    kinds = {k for text in texts for k in re.findall(r"emit\(input, state, '([A-Z_]+)'", text)}
    assert "OVERAGE_STARTED" in kinds
    assert {f"TYPE_{k}" for k in kinds} <= set(admin_pb.Event.Type.keys())
