"""The project's own tools: load test, benchmarks, profiler (the client is `taskcast_client`)."""
