"""What people and CI read: HTML report, summary.json, JUnit XML, verdict."""
