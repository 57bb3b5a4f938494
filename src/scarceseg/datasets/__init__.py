"""Layouts of public data sets turned into Cases; patient-level splits."""
