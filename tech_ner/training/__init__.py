"""Training: `spacy train` with the project's defaults (epochs, backbone check) and the layer-decay optimizer."""
