"""Actions: the registry, the invocation wrapper and the built-in handlers (SPEC §6)."""
