"""What the tests share: real Redis servers, sidecars, Prometheus, call helpers, constants."""
