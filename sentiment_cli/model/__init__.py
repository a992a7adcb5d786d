"""The classifier: its architecture (JSON), the torch module, the optimiser."""
