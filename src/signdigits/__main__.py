"""``python -m signdigits``: the same command line as ``signdigits``."""

import sys

from signdigits.cli import main

if __name__ == "__main__":
    sys.exit(main())
