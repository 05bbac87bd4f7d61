"""Plain, slow reference versions of the fast code paths, used by tests and bench to check them."""
