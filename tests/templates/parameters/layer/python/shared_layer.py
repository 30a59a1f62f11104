"""A module the shared layer provides."""

SHARED = "from the shared layer"
