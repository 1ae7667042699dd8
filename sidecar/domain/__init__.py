"""The domain core: contacts, periods, plans, subscriptions, decisions; standard library only."""
