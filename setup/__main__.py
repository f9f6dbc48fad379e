import sys

from setup.cli import main

sys.exit(main())
