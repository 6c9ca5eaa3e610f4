"""The serving front: granian, each request's body read whole before the app's Python sees it."""
