"""First-party plugin: local Hugging Face models (tiny models, sampling, reward models)."""
