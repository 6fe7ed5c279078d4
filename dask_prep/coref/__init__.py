"""Coreference examples: whole-word entity mentions, candidates, the global cap, tokenization."""
