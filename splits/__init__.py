"""Video/subject-level splitting and leakage audits."""
