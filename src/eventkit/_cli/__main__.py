"""``python -m eventkit._cli``: the ``eventkit`` command, where no script is installed."""

import sys

from eventkit._cli import main

sys.exit(main())
