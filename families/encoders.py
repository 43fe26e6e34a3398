"""Text encoders and VAEs shared by several families, at each scale."""
from __future__ import annotations

from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from families.synthetic import ModuleBuilder

CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
CLIP_H = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
              max_position_embeddings=77, hidden_act="gelu", projection_dim=1024)
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              relative_attention_num_buckets=32, relative_attention_max_distance=128,
              feed_forward_proj="gated-gelu", is_encoder_decoder=False, tie_word_embeddings=False)

_CLIP_IDS = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1)


def clip_config(hidden: int, layers: int, heads: int, projection: int | None = None, **extra: object) -> dict:
    """A small CLIP text config (vocab 1000: the in-memory tokenizer uses ids below 100)."""
    config = dict(vocab_size=1000, hidden_size=hidden, intermediate_size=hidden * 4 if hidden > 32 else 37,
                  num_hidden_layers=layers, num_attention_heads=heads, max_position_embeddings=77,
                  hidden_act="gelu", projection_dim=projection or hidden, layer_norm_eps=1e-5)
    return {**config, **extra}


def t5_config(d_model: int, layers: int, heads: int, d_ff: int) -> dict:
    """A small T5 encoder config (vocab 1103 like diffusers' tiny-random-t5)."""
    return dict(vocab_size=1103, d_model=d_model, d_kv=d_model // heads, d_ff=d_ff, num_layers=layers,
                num_heads=heads, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                is_encoder_decoder=False, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1)


def clip_text(build: ModuleBuilder, config: dict, with_projection: bool = False):
    """CLIPTextModel (or CLIPTextModelWithProjection) with random weights."""
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return build(lambda: cls(CLIPTextConfig(**{**_CLIP_IDS, **config})))


def t5_encoder(build: ModuleBuilder, config: dict) -> T5EncoderModel:
    """T5 encoder with random weights."""
    return build(lambda: T5EncoderModel(T5Config(**config)))


def kl_vae_config(channels: tuple[int, ...], latent: int, layers: int = 2, groups: int = 32, **extra: object) -> dict:
    """AutoencoderKL config with `len(channels)` levels (downsampling 2**(levels-1))."""
    return dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * len(channels),
                up_block_types=["UpDecoderBlock2D"] * len(channels), block_out_channels=list(channels),
                layers_per_block=layers, act_fn="silu", norm_num_groups=groups, latent_channels=latent, **extra)


FULL_KL = (128, 256, 512, 512)
SMALL_KL = (32, 64, 128, 128)
