"""`python -m scanner`: the command line of DESIGN §3 (see scanner/_cli.py)."""

import sys

from scanner._cli import main

if __name__ == "__main__":
    sys.exit(main())
