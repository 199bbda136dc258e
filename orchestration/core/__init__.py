"""The bottom layer: settings, the database, locks, `db init`, errors and text formatting.

Imports nothing else of the package; everything above may import it.
"""
