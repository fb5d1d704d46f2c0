"""Stepwise contract: the one library every service shares.

Names, payload types, the DSL, the Temporal converter and the SQL migrations.
"""
