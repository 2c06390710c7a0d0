"""The four reserved token ids, fixed when the SentencePiece model is trained.

Their own module so that models and search know them without importing the vocabulary (and so
SentencePiece): ``s2s.data.vocab`` trains the model with exactly these ids.
"""

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
