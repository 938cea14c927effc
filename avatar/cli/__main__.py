"""``python -m avatar.cli``: the same as the ``avatar`` console script."""

import sys

from . import console_main

sys.exit(console_main())
