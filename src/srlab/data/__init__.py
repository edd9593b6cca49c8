"""Data: image loading, degradations, datasets (local and remote), and prepared patch arrays."""
