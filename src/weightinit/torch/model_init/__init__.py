"""Whole-model initialization for PyTorch (:func:`weightinit.torch.initialize`)."""
