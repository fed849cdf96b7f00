"""Checkpoint formats of :mod:`weightinit.artifact`: safetensors (Hugging Face layout) and torch DCP."""
