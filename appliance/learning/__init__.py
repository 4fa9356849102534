"""Few-shot teaching: imprinted and trained heads over embeddings, and the class store."""
