"""The policy network: tokenizers, transformer backbone, flow-matching action head, presets."""
