"""The bad-input battery, one module per command; see ``common.py`` and ``tests/test_bad_inputs.py``."""
