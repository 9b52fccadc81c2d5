"""Data in: BIO readers, label maps, conversion to DocBin corpora and back, the train/dev/test split and the
embedded corpus builder."""
