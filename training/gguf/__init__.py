"""GGUF files (llama.cpp, Ollama, LM Studio) as base models: a bounded header reader (header.py),
what the metadata says as a Hugging Face config (config.py), the tensors dequantized under their HF
names (tensors.py), the tokenizer (tokenizer.py), and the conversion into a cached HF folder
(convert.py). No JAX here."""
