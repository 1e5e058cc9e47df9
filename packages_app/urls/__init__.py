"""URL modules of the catalog side, one per namespace (included by distro_site/urls.py)."""
