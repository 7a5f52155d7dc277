"""The callback interface, its context, and dispatch."""
