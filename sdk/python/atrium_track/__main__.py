"""`python3 -m atrium_track ...` — the same as the `atrium-track` command."""

import sys

from .cli import main

sys.exit(main())
