"""The README and docs/: their runnable examples run against a real sidecar, their links resolve."""
