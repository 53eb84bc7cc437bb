"""Resources: the adapters between the tournament and the outside world (PostgreSQL, LLM engines)."""
