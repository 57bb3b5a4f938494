"""The label store (SQLite): images, candidates, picks, clicks, masks, who/when."""
