"""Browser tests of the Voila dashboards (Playwright driving Debian's chromium)."""
