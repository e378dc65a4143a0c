"""ranking package."""
