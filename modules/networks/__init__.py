"""Extra networks: LoRAs and textual-inversion embeddings, the small files a prompt names."""
