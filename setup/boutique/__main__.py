"""``python -m splitproof.setup.boutique <service> [--host H] [--port N] ...``: run one local boutique service."""

import sys

from splitproof.setup.boutique.serve import main

sys.exit(main())
