"""Readers and fetchers for public data sets (MovieLens-100K, Open Bandit Dataset) and logs."""
