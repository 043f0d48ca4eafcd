"""The book as a product: Colab notebooks generated from the chapters, the build environment, the Sphinx hooks
that add a Colab link and a "reproduce this page" box to every chapter, and the headless-browser check of the
rendered site."""
