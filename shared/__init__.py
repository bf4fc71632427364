"""Code both the API and the workers import: config, the internal model, wire formats, Redis and DB access."""
