"""verify-split: count responses per version and judge them against the configured split."""
