"""Stepwise development kit: the dev stack, the e2e test harness and the bench."""
