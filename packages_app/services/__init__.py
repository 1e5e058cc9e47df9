"""Services: every write to the catalog goes through here."""
