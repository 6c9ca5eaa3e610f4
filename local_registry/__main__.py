"""python -m local_registry: the local Comet-compatible registry."""

import sys

from .cli import main

sys.exit(main())
