"""``python -m rebal_core``: the command line (:mod:`rebal_core.cli`)."""

import sys

from rebal_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
