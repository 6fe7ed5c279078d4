"""Helpers shared by the tests: importable (`from support.data import needs_shared`), not tests.

- `data`: where the test data is (the repo's sample, ../shared), `needs_shared`, the seed-v2
  rules, made-up tokens, reading a corpus back, the seed-v2 config with the shared tokenizer;
- `runs`: running the pipeline on a test's cluster and reading a run back; interrupting a run;
- `processes`: console scripts, process groups, waiting, a closed local port;
- `terminal`: a CLI run on a real pseudo-terminal;
- `s3_server`, `kiwi_fault_preload`, `datatrove_oracle`, `reference_seed_v2`: the local S3
  server, a worker preload that makes Kiwi crash, the datatrove and seed-v2 oracles.

Fixtures stay in tests/conftest.py. A test file imports shared code from here only, never
from conftest or from another test file (tests/project/test_test_tree.py checks it).
"""
