"""Training and prediction loops shared by LOSO and the protocol-pitfall experiments."""
