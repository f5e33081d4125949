"""Operations: metrics and their scrape-time readings, logging, and the dashboard's feed and sessions."""
