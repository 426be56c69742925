"""`python -m mosaic_httpx_auth`: the same as the `mosaic-httpx-auth` command."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
