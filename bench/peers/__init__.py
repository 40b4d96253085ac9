"""What people use instead of kizen-sync, written the way they usually write it."""
