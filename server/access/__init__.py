"""Access: the API key, watch tokens, and keeping credentials out of logs."""
