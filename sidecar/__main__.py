"""``python -m sidecar``: the ``sidecar`` command."""

import sys

from sidecar.cli.main import main

sys.exit(main())
