"""Route modules; each has `setup(app)` adding its routes."""
