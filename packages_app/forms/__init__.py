"""Forms of the catalog side: input shape only (services judge)."""
