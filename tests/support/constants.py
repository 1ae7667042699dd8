"""Constants every kind of test shares."""

from sidecar.domain.decision import Policy

SECRET = "test-identity-secret-0123456789"
ADMIN_TOKEN = "test-admin-token"
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)

# A limit of two, thresholds at half and full: for tests that reach the limit in a few calls.
SMALL_POLICY = Policy(
    limit=2,
    plan="starter",
    trial_plan="",
    trial_limit=0,
    trial_days=0,
    thresholds=(50, 100),
    events_max=100,
)
