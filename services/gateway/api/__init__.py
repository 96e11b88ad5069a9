"""HTTP layer of the gateway: JSON API routers and HTMX page routers (thin)."""
