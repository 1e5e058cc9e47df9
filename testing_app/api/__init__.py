"""The read-only JSON API (Django REST framework), described at /api/schema/."""
