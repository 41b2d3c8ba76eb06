"""``python -m lmtpd.cli``: the ``ingest`` command."""

import sys

from lmtpd.cli import main

sys.exit(main())
