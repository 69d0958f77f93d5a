"""Floor 2: the Microsoft Graph client (httpx, async)."""
