"""One module per framework behind the doctor's small backend vocabulary (each imports its framework)."""
