"""``python -m fastres``: the ``fastres`` command line."""

import sys

from fastres.cli import main

sys.exit(main())
