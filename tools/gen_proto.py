"""Generate the Python code for proto/ into a package directory (default: sidecar/gen)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "sidecar" / "gen"
PACKAGE = "sidecar.gen"
HEADER = '"""Generated from proto/ by `make proto`; do not edit."""\n'

# protoc writes imports relative to the proto root ("from mac.v1 import x_pb2");
# they must point into our subpackage instead.
_IMPORT = re.compile(r"^from (mac(?:\.\w+)*) import", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    """Generate the code into ``out`` and return the files written."""
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for path in sorted(out.rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = _IMPORT.sub(rf"from {PACKAGE}.\1 import", path.read_text())
        path.write_text(text)
        written.append(path)
    for directory in sorted({p.parent for p in written} | {out}):
        current = directory
        while current != out.parent:
            init = current / "__init__.py"
            if not init.exists():
                init.write_text(HEADER)
                written.append(init)
            current = current.parent
    return sorted(written)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ns = parser.parse_args()
    for path in generate(ns.out):
        print(path.relative_to(ns.out.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
