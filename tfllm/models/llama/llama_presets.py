"""Llama-family sizes: plain dicts of `Llama` config values (randomly initialised by `from_preset`)."""

LLAMA_PRESETS = {
    # For tests and the training recipe's smoke runs.
    "llama_nano": dict(vocabulary_size=1000, num_layers=2, num_heads=4, num_key_value_heads=2, hidden_dim=64,
                       intermediate_dim=128, max_sequence_length=128),
    # Published sizes (their config.json values; weights come from from_pretrained).
    "smollm_135m": dict(vocabulary_size=49152, num_layers=30, num_heads=9, num_key_value_heads=3, hidden_dim=576,
                        intermediate_dim=1536, max_sequence_length=2048, rms_norm_epsilon=1e-5,
                        tie_word_embeddings=True),
    "qwen2.5_0.5b": dict(vocabulary_size=151936, num_layers=24, num_heads=14, num_key_value_heads=2,
                         hidden_dim=896, intermediate_dim=4864, max_sequence_length=32768, rope_theta=1000000.0,
                         qkv_bias=True, tie_word_embeddings=True),
    "tinyllama_1.1b": dict(vocabulary_size=32000, num_layers=22, num_heads=32, num_key_value_heads=4, hidden_dim=2048,
                           intermediate_dim=5632, max_sequence_length=2048, rms_norm_epsilon=1e-5),
}
