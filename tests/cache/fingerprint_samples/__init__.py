"""Importable values for the fingerprint tests, including those run in a subprocess."""
