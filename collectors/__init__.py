"""Pull collectors. Importing this package registers every built-in one (collectors.registry.COLLECTORS)."""

from logtide.collectors import cloudwatch, salesforce, k8s  # noqa: F401 - imported to register
