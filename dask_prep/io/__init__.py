"""Input: finding files, decoding them, reading partitions of records; object-store access and the output lock."""
