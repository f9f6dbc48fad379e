"""``python -m setup.boutique <service> [--host H] [--port N] ...``: run one local boutique service."""

import sys

from setup.boutique.launcher import main

sys.exit(main())
