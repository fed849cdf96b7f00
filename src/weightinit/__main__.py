"""``python -m weightinit`` runs the command line."""

import sys

from weightinit.cli.main import main

sys.exit(main())
