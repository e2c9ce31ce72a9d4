"""What every keygate service shares: the bottom floor, which imports no other keygate package."""
