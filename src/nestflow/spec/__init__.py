"""Declarative YAML pipelines: files compiled into ordinary ``Pipeline`` objects."""
