"""``python -m ucwa_async`` is the ``ucwa-async`` command."""

import sys

from ucwa_async.cli import main

sys.exit(main())
