"""The use cases: enforcement, identities, periods, operators' calls, events; over ports."""
