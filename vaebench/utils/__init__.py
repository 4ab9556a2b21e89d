"""Small shared helpers: atomic result files and run provenance."""
