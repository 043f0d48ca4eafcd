"""``make bench``: the speed of preprocessing, models, LOSO and the book's chapters, measured side by side.

Importing the package imports convat first, so every benchmark module's torch starts with convat's thread and
memory settings (OpenMP's passive wait, kept freed memory) whether it runs through ``make bench`` or alone
(``python -m benchmarks.models``): libgomp reads its wait policy once, when torch loads it. A variant that wants
torch's own defaults says so itself (:func:`benchmarks.threads.load_torch`)."""

import convat  # noqa: F401
