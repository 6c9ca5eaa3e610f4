"""The whole suite's settings: the local registry answers `details` as the SDK documents it.

"sdk" (no status or tags in registry-model/details) is the stricter referee of how the sidecar
finds versions; LOCAL_REGISTRY_DETAILS_SHAPE=full runs the suite against the superset instead.
Every local registry the tests start (directly, through the demo or a pod) inherits it.
"""

import os

os.environ.setdefault("LOCAL_REGISTRY_DETAILS_SHAPE", "sdk")
