"""Stream processors: ``logtide.raw.*`` → an ordered pipeline of steps → ``logtide.route.<sink>``.

- ``app.py``: the role (config, the per-batch handler with the DLQ, ``logtide up`` part);
- ``pipeline.py``: steps built from the YAML config, run per event (with per-route copies);
- ``steps/``: one module per step, found by name (``type: redact``) through ``steps.base.REGISTRY``;
- ``cli.py``: ``logtide process``;
- ``sinks/``: the sinks that read the route topics (their own package).
"""
