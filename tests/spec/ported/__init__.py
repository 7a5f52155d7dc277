"""Workflows ported from pipeline_ex examples, with the stub functions they name."""
