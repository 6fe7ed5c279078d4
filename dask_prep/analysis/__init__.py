"""Analysis: one Kiwi per worker, progressive analysis, crash isolation, the quality filters."""
