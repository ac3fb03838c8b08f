"""``python -m jscale.cli``: the ``jscale`` command."""

import sys

from . import main

sys.exit(main())
