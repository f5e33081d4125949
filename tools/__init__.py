"""The project's own tools: the Python client and its CLI, load test, profiler."""
