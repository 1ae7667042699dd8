"""MAC sidecar: Monthly Active Contacts enforcement over gRPC, counted atomically in Redis."""

__version__ = "0.1.0"
