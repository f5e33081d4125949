"""Operations: Prometheus metrics, their scrape-time readings, and the API's logging set-up."""
