"""The scanner is a pure library: importing it must not pull in Django."""

import subprocess
import sys


def test_importing_the_scanner_does_not_import_django():
    code = (
        "import sys, scanner, scanner._probe, scanner._cli\n"
        "top = ('django', 'popcompliance')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in top)\n"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
