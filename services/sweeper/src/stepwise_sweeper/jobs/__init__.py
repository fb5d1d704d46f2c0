"""The sweeper's periodic jobs (SPEC §10), one module each."""
