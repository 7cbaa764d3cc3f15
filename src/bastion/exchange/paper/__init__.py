"""exchange/paper."""
