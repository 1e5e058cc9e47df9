"""Catalog pages: package list and detail, proposals, the review queue, accounts, tokens."""
