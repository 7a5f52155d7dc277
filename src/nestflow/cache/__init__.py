"""Caching: value and code fingerprints, stores (MetaStore, BlobStore), Cache and its stores."""
