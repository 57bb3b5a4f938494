"""One pure function per metric, a collector writing per-case CSV and summary JSON, paired statistics."""
