"""One-run benchmarks: nestflow against plain Python and, where installed, peer libraries."""
