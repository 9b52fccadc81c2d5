"""Scoring: spaCy's scorer and seqeval side by side (parity), reports and plots."""
