"""arq workers: run completion jobs against providers, with retries, fallback and circuit breakers."""
