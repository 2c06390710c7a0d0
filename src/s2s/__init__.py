"""seq2seq-pipeline: reproducible NMT experiments (download -> preprocess -> train -> evaluate)."""

__version__ = "0.1.0"
