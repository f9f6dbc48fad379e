import sys

from splitproof.setup.cli import main

sys.exit(main())
