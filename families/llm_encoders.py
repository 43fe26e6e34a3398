"""LLM text encoders (Qwen2.5-VL, Qwen3, Mistral 3) at each scale.

tiny: the configs of diffusers' pipeline tests; small: 4 layers of width 128 with a 512-token vocabulary (the
in-memory tokenizer's ids are below 300, <|endoftext|> is 256); full: the released architectures.
"""
from __future__ import annotations

from transformers import (Mistral3Config, Mistral3ForConditionalGeneration, Qwen2_5_VLConfig,
                          Qwen2_5_VLForConditionalGeneration, Qwen3Config, Qwen3ForCausalLM, Qwen3Model)

from families.synthetic import ModuleBuilder

SMALL_VOCAB = 512
_SMALL_TEXT = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=32, vocab_size=SMALL_VOCAB, max_position_embeddings=2048,
                   bos_token_id=256, eos_token_id=256)

QWEN25_VL_7B = dict(
    text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000, rms_norm_eps=1e-6,
                     rope_theta=1000000.0, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
                     tie_word_embeddings=False),
    vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                       patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                       fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu"),
    vocab_size=152064, tie_word_embeddings=False,
    image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
QWEN25_VL = {
    "tiny": dict(
        text_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, rope_theta=1000000.0,
                         rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}),
        vision_config=dict(depth=2, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=16),
        hidden_size=16, vocab_size=152064, vision_end_token_id=151653, vision_start_token_id=151652,
        vision_token_id=151654),
    "small": dict(
        text_config=dict(_SMALL_TEXT, rope_theta=1000000.0,
                         rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]}, tie_word_embeddings=False),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=128),
        vocab_size=SMALL_VOCAB, tie_word_embeddings=False),
    "full": QWEN25_VL_7B,
}

# Mistral-Small-3.1/3.2 24B; without tie_word_embeddings=False the count is 23.34 B instead of 24.01 B.
MISTRAL_SMALL_24B = dict(
    text_config=dict(model_type="mistral", hidden_size=5120, intermediate_size=32768, num_hidden_layers=40,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=131072,
                     max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=1e9, sliding_window=None,
                     tie_word_embeddings=False),
    vision_config=dict(model_type="pixtral", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                       num_attention_heads=16, head_dim=64, image_size=1540, patch_size=14, num_channels=3),
    image_token_index=10, multimodal_projector_bias=False, projector_hidden_act="gelu", spatial_merge_size=2,
    tie_word_embeddings=False)
MISTRAL3 = {
    "tiny": dict(
        text_config=dict(model_type="mistral", vocab_size=32000, hidden_size=16, intermediate_size=37,
                         max_position_embeddings=512, num_attention_heads=4, num_hidden_layers=1,
                         num_key_value_heads=2, rms_norm_eps=1e-05, rope_theta=1000000000.0, sliding_window=None,
                         bos_token_id=2, eos_token_id=3, pad_token_id=4),
        vision_config=dict(model_type="pixtral", hidden_size=16, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=37, image_size=30, patch_size=6, num_channels=3),
        bos_token_id=2, eos_token_id=3, pad_token_id=4, image_seq_length=4, vision_feature_layer=-1,
        image_token_index=1),
    "small": dict(
        text_config=dict(_SMALL_TEXT, model_type="mistral", rope_theta=1e9, sliding_window=None,
                         tie_word_embeddings=False),
        vision_config=dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, head_dim=16, image_size=56, patch_size=14, num_channels=3),
        image_token_index=10, multimodal_projector_bias=False, spatial_merge_size=2, tie_word_embeddings=False),
    "full": MISTRAL_SMALL_24B,
}

QWEN3_4B = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
QWEN3_8B = dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)
QWEN3 = {
    "tiny": dict(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=512),
    "small": dict(_SMALL_TEXT, rope_theta=1000000.0, tie_word_embeddings=True),
}


def qwen25_vl(build: ModuleBuilder, scale: str) -> Qwen2_5_VLForConditionalGeneration:
    """Qwen2.5-VL (7B at full scale, Qwen-Image's encoder) with random weights."""
    return build(lambda: Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**QWEN25_VL[scale])))


def mistral3(build: ModuleBuilder, scale: str) -> Mistral3ForConditionalGeneration:
    """Mistral 3 (Small 3.x 24B at full scale, FLUX.2-dev's encoder) with random weights."""
    return build(lambda: Mistral3ForConditionalGeneration(Mistral3Config(**MISTRAL3[scale])))


def qwen3(build: ModuleBuilder, scale: str, full: dict = QWEN3_4B,
          causal: bool = False) -> Qwen3Model | Qwen3ForCausalLM:
    """Qwen3 (`full` at full scale) as a bare model or with its LM head, with random weights."""
    config = Qwen3Config(**(full if scale == "full" else QWEN3[scale]))
    return build(lambda: (Qwen3ForCausalLM if causal else Qwen3Model)(config))
