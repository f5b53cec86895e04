"""What every test folder needs, written once: waiting with a deadline (``wait``), Prometheus
metric readers (``metrics``), envelope builders (``events``), producing to and reading topics on
the broker or the in-memory transport (``kafka``), and a loopback HTTP double (``http``)."""
