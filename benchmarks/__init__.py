"""``make bench``: the speed of preprocessing, models, LOSO and the book's chapters, measured side by side."""
