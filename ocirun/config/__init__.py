"""Bundle loading (load.py) and validation (validate.py); imported piecemeal, nothing here."""
