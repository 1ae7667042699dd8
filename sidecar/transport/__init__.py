"""gRPC transport: wire conversion, status mapping, the Enforcer and Admin servicers."""
