"""Script errors point at the .lua file and line they came from."""

from __future__ import annotations

from sidecar.storage import scripts
from sidecar.storage.scripts import Script

LIB = "-- lib\nlocal function helper()\n  return 1\nend\n"
BODY = "-- body\nlocal x = helper()\nreturn x + nil\n"


def test_lines_of_the_joined_source_map_to_their_files() -> None:
    script = Script.from_parts("broken", [("lib/helper.lua", LIB), ("broken.lua", BODY)])
    lines = script.source.splitlines()
    assert lines[script.parts[1][1] - 1] == "-- body"
    assert script.locate(3) == ("lib/helper.lua", 3)
    body_line = lines.index("return x + nil") + 1
    assert script.locate(body_line) == ("broken.lua", 3)
    message = f"ERR user_script:{body_line}: attempt to perform arithmetic on a nil value"
    assert script.explain(message) == (
        "ERR broken.lua:3: attempt to perform arithmetic on a nil value"
    )


def test_the_shipped_scripts_start_each_part_where_its_file_starts() -> None:
    for script in scripts.ALL:
        lines = script.source.splitlines()
        for file_name, first in script.parts:
            assert lines[first - 1].startswith(f"-- {file_name}:"), file_name
