"""logtide: centralized log streaming and alerting on Kafka. This package is the shared kernel
(envelope, config, transport, broker, checkpoints, health, condition language, CLI); the roles live
in agents/, collectors/, processors/, alerting/ and tools/ and plug in through entry points."""

__version__ = "0.1.0"
