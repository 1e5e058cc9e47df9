"""Reads of the catalog side (one module per topic); writes belong to services."""
