"""FLUX.1 (dev, schnell): CLIP-L + T5-XXL, 19 double + 38 single transformer blocks streamed, 16-channel VAE."""
from __future__ import annotations

from typing import Any

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.diffusers_family import DiffusersFamily
from families.encoders import (CLIP_L, FULL_KL, SMALL_KL, T5_XXL, clip_config, clip_text, kl_vae_config, t5_config,
                               t5_encoder)
from families.synthetic import ModuleBuilder
from families.tokenizers import clip_tokenizer, t5_tokenizer
from families.units import block_lists

TRANSFORMER = {
    "tiny": dict(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
                 num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 4, 8)),
    "small": dict(patch_size=1, in_channels=64, num_layers=4, num_single_layers=8, attention_head_dim=64,
                  num_attention_heads=12, joint_attention_dim=256, pooled_projection_dim=256,
                  axes_dims_rope=(8, 28, 28)),
    "full": dict(patch_size=1, in_channels=64, out_channels=None, num_layers=19, num_single_layers=38,
                 attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                 axes_dims_rope=(16, 56, 56)),
}
CLIP = {"tiny": clip_config(hidden=32, layers=5, heads=4), "small": clip_config(hidden=256, layers=4, heads=4),
        "full": CLIP_L}
T5 = {"tiny": t5_config(d_model=32, layers=5, heads=4, d_ff=37), "small": t5_config(256, layers=4, heads=4, d_ff=1024),
      "full": T5_XXL}
_VAE_16 = dict(use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159)
VAE = {
    "tiny": kl_vae_config((4,), latent=1, layers=1, groups=1, **_VAE_16),
    "small": kl_vae_config(SMALL_KL, latent=16, layers=1, **_VAE_16),
    "full": kl_vae_config(FULL_KL, latent=16, sample_size=1024, **_VAE_16),
}
TEXT_TOKENS = {"tiny": 48, "small": 64, "full": 512}
STEPS = {"dev": 28, "schnell": 4}


@FAMILIES.register("flux")
class Flux(DiffusersFamily):
    """FLUX.1 (FluxTransformer2DModel, 11.9 B parameters at full scale)."""

    name = "flux"
    variants = ("dev", "schnell")
    size_multiple = 16
    pipeline_class = FluxPipeline
    stages = (("text_encoder", "encoder", ("forward",)), ("text_encoder_2", "encoder", ("forward",)),
              ("transformer", "denoiser", ("forward",)), ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        if scale == "full":
            return RunDefaults(STEPS[variant], 1024, 1024)
        return RunDefaults(2, 16, 16) if scale == "tiny" else RunDefaults(3, 256, 256)

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        config = dict(TRANSFORMER[scale], guidance_embeds=variant == "dev")
        if variant == "dev":
            scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
        else:
            scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
        return dict(
            text_encoder=clip_text(build, CLIP[scale]), tokenizer=clip_tokenizer(),
            text_encoder_2=t5_encoder(build, T5[scale]), tokenizer_2=t5_tokenizer(TEXT_TOKENS[scale]),
            transformer=build(lambda: FluxTransformer2DModel(**config)), vae=build(lambda: AutoencoderKL(**VAE[scale])),
            scheduler=scheduler, image_encoder=None, feature_extractor=None)

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        return block_lists(module, "transformer_blocks", "single_transformer_blocks")

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        return dict(prompt=args.prompt, num_inference_steps=args.steps, height=args.height, width=args.width,
                    guidance_scale=3.5 if spec.variant == "dev" else 0.0,
                    max_sequence_length=TEXT_TOKENS[spec.scale], output_type="pt")
