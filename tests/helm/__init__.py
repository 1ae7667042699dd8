"""Tests of the Helm chart and the container image, with no cluster and no network."""
