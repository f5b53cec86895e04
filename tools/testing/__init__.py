"""`logtide test`: the TESTS.yaml format (spec.py), expectations and diffs (expect.py), the offline
runs of the real pipeline and alerting engine (harness.py) and the command (cli.py)."""
