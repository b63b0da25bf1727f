"""``python -m rebal_core``: the command line (:mod:`rebal_core.cli`)."""

import sys

from rebal_core.cli import main

sys.exit(main())
