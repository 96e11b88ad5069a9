"""Afinador microservices: gateway, optimizer, evolution, reward (and a shared `common`)."""
