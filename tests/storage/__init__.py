"""Each storage operation against a real Redis, without gRPC."""
