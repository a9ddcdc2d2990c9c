"""Who calls: principals and their roles, and API keys for back ends."""
