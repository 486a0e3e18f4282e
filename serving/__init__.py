"""Tailor serving: artifact loading, FAISS indices, offer ranking, the BentoML service."""
