"""Deduplication before Kiwi: exact copies by a hash of the normalised text."""
