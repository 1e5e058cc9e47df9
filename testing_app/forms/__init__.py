"""Forms of the testing side: input shape only (services judge)."""
