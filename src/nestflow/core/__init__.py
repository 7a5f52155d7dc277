"""Definitions only: nodes, pipelines, nesting and configuration. Nothing here runs."""
