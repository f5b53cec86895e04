"""Kubernetes API collector: pod logs streamed from the API server (clusters without a DaemonSet, e.g. Fargate)."""
