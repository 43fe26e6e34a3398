"""Stable Diffusion 1.5: CLIP-L, a UNet streamed block by block, a 4-channel KL VAE."""
from __future__ import annotations

from typing import Any

from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.diffusers_family import DiffusersFamily
from families.encoders import CLIP_L, FULL_KL, SMALL_KL, clip_config, clip_text, kl_vae_config
from families.synthetic import ModuleBuilder
from families.tokenizers import clip_tokenizer
from families.units import block_lists

_UNET_BLOCKS = dict(down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
UNET = {
    "tiny": dict(block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8, norm_num_groups=2),
    "small": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=32, in_channels=4,
                  out_channels=4, attention_head_dim=8, cross_attention_dim=256, norm_num_groups=32, **_UNET_BLOCKS),
    "full": dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, sample_size=64, in_channels=4,
                 out_channels=4, attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32, act_fn="silu",
                 **_UNET_BLOCKS),
}
TEXT = {
    "tiny": clip_config(hidden=8, layers=2, heads=2, intermediate_size=16),
    "small": clip_config(hidden=256, layers=4, heads=4),
    "full": CLIP_L,
}
VAE = {
    "tiny": kl_vae_config((4, 8), latent=4, layers=1, groups=2),
    "small": kl_vae_config(SMALL_KL, latent=4, layers=1, scaling_factor=0.18215),
    "full": kl_vae_config(FULL_KL, latent=4, sample_size=512, scaling_factor=0.18215),
}
DEFAULTS = {"tiny": RunDefaults(2, 64, 64), "small": RunDefaults(4, 256, 256), "full": RunDefaults(25, 512, 512)}


@FAMILIES.register("sd15")
class SD15(DiffusersFamily):
    """SD 1.5 (UNet2DConditionModel, 0.86 B parameters at full scale)."""

    name = "sd15"
    variants = ("base",)
    pipeline_class = StableDiffusionPipeline
    stages = (("text_encoder", "encoder", ("forward",)), ("unet", "denoiser", ("forward",)),
              ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        return DEFAULTS[scale]

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        return dict(
            text_encoder=clip_text(build, TEXT[scale]), tokenizer=clip_tokenizer(),
            unet=build(lambda: UNet2DConditionModel(**UNET[scale])), vae=build(lambda: AutoencoderKL(**VAE[scale])),
            scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                    clip_sample=False, set_alpha_to_one=False, steps_offset=1),
            safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        return [*block_lists(module, "down_blocks"), ("mid_block", module.mid_block), *block_lists(module, "up_blocks")]

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        return dict(prompt=args.prompt, num_inference_steps=args.steps, height=args.height, width=args.width,
                    guidance_scale=7.5, output_type="pt")
