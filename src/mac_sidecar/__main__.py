"""``python -m mac_sidecar``: the ``sidecar`` command."""

import sys

from mac_sidecar.cli import main

sys.exit(main())
