"""``python -m fastpanel``: the command line (see :mod:`fastpanel.cli`)."""

import sys

from fastpanel.cli import main

if __name__ == "__main__":
    sys.exit(main())
