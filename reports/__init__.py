"""What people and CI read, rendering only: summary.json, the HTML report, JUnit XML, figures."""
