"""`make bench`: SPEC §11 figures, each beside a hand-written Temporal baseline in the same run."""
