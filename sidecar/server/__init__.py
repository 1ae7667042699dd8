"""The sidecar process: composition, health, HTTP probes, worker processes."""
