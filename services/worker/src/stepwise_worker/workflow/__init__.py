"""Code that runs in the Temporal workflow sandbox: deterministic, no I/O.

Activities are reached by name (`messages.py`, `wait_messages.py`), never by import.
"""
