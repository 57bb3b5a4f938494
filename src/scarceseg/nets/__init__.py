"""Network building blocks shared by methods."""
