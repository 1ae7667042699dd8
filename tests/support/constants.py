"""Constants every kind of test shares."""

SECRET = "test-identity-secret-0123456789"
ADMIN_TOKEN = "test-admin-token"
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
