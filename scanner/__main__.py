"""`python -m scanner`: the command line (see scanner/_cli.py and docs/cli.md)."""

import sys

from scanner._cli import main

if __name__ == "__main__":
    sys.exit(main())
