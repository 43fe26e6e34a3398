"""Stable Diffusion 3.5 (medium, large): CLIP-L + CLIP-bigG + T5-XXL, MMDiT blocks streamed, 16-channel VAE.

Small scale (0.13 B medium, 0.21 B large): one transformer call with CFG at 256x256 in fp32 costs 0.98 s (medium)
and 1.46 s (large) of CPU on one thread, so about 0.55 s and 0.8 s on 2 free cores (the shared 2-core box was too
loaded to time two threads). Tiny: under 20 ms a step.
"""
from __future__ import annotations

from typing import Any

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.diffusers_family import DiffusersFamily
from families.encoders import FULL_KL, SMALL_KL, T5_XXL, clip_text, kl_vae_config, t5_config, t5_encoder
from families.sdxl import CLIP_PAIR
from families.synthetic import ModuleBuilder
from families.tokenizers import clip_tokenizer, t5_tokenizer
from families.units import block_lists

_TINY = dict(sample_size=32, patch_size=1, in_channels=4, num_layers=4, attention_head_dim=8, num_attention_heads=4,
             caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4,
             pos_embed_max_size=96, qk_norm="rms_norm")
# small: joint = the T5 width (256), pooled = both CLIP projections (64 + 128); the positional table covers 1536 px
# (medium) and 768 px (large), the same multiples of the default size as the released models.
_SMALL = dict(sample_size=32, patch_size=2, in_channels=16, out_channels=16, attention_head_dim=64,
              joint_attention_dim=256, pooled_projection_dim=192, qk_norm="rms_norm")
_FULL = dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, attention_head_dim=64,
             joint_attention_dim=4096, pooled_projection_dim=2048, qk_norm="rms_norm")
TRANSFORMER = {
    ("medium", "tiny"): dict(_TINY, dual_attention_layers=(0,)),
    ("large", "tiny"): dict(_TINY, dual_attention_layers=()),
    ("medium", "small"): dict(_SMALL, num_layers=12, num_attention_heads=8, caption_projection_dim=512,
                              pos_embed_max_size=96, dual_attention_layers=tuple(range(6))),
    ("large", "small"): dict(_SMALL, num_layers=14, num_attention_heads=10, caption_projection_dim=640,
                             pos_embed_max_size=48, dual_attention_layers=()),
    ("medium", "full"): dict(_FULL, num_layers=24, num_attention_heads=24, caption_projection_dim=1536,
                             pos_embed_max_size=384, dual_attention_layers=tuple(range(13))),
    ("large", "full"): dict(_FULL, num_layers=38, num_attention_heads=38, caption_projection_dim=2432,
                            pos_embed_max_size=192, dual_attention_layers=()),
}
T5 = {"tiny": t5_config(d_model=32, layers=5, heads=4, d_ff=37), "small": t5_config(256, layers=4, heads=4, d_ff=1024),
      "full": T5_XXL}
_VAE_16 = dict(use_quant_conv=False, use_post_quant_conv=False, scaling_factor=1.5305, shift_factor=0.0609)
VAE = {
    "tiny": kl_vae_config((4,), latent=4, layers=1, groups=1, sample_size=32, **_VAE_16),
    "small": kl_vae_config(SMALL_KL, latent=16, layers=1, **_VAE_16),
    "full": kl_vae_config(FULL_KL, latent=16, sample_size=1024, **_VAE_16),
}
TEXT_TOKENS = {"tiny": 32, "small": 64, "full": 256}
STEPS = {"medium": 40, "large": 28}  # the model cards' settings
GUIDANCE = {"medium": 4.5, "large": 3.5}


@FAMILIES.register("sd3")
class SD3(DiffusersFamily):
    """SD3.5 (SD3Transformer2DModel: 2.47 B medium, 8.15 B large at full scale, positional table included)."""

    name = "sd3"
    variants = ("medium", "large")
    size_multiple = 16
    pipeline_class = StableDiffusion3Pipeline
    stages = (("text_encoder", "encoder", ("forward",)), ("text_encoder_2", "encoder", ("forward",)),
              ("text_encoder_3", "encoder", ("forward",)), ("transformer", "denoiser", ("forward",)),
              ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        if scale == "full":
            return RunDefaults(STEPS[variant], 1024, 1024)
        return RunDefaults(2, 16, 16) if scale == "tiny" else RunDefaults(2, 256, 256)

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        clip_l, clip_g = CLIP_PAIR[scale]
        config = TRANSFORMER[variant, scale]
        return dict(
            text_encoder=clip_text(build, clip_l, with_projection=True), tokenizer=clip_tokenizer(),
            text_encoder_2=clip_text(build, clip_g, with_projection=True), tokenizer_2=clip_tokenizer(),
            text_encoder_3=t5_encoder(build, T5[scale]), tokenizer_3=t5_tokenizer(TEXT_TOKENS[scale]),
            transformer=build(lambda: SD3Transformer2DModel(**config)), vae=build(lambda: AutoencoderKL(**VAE[scale])),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), image_encoder=None, feature_extractor=None)

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        return block_lists(module, "transformer_blocks")

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        return dict(prompt=args.prompt, num_inference_steps=args.steps, height=args.height, width=args.width,
                    guidance_scale=GUIDANCE[spec.variant], max_sequence_length=TEXT_TOKENS[spec.scale],
                    output_type="pt")
