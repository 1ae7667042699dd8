"""make bench: throughput and latency of the sidecar beside a bare grpc.aio echo server."""
