"""``python -m sidecar``: the ``sidecar`` command."""

import sys

from sidecar.cli import main

sys.exit(main())
