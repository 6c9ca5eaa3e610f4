"""`python -m registry_sync`: the registry-sync command line."""

import sys

from .cli import main

sys.exit(main())
