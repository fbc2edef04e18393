"""Generation workers on Ray Serve (--workers ray). Nothing here imports ray until the workers start."""
