"""Stable Diffusion XL: CLIP-L + CLIP-bigG, a UNet streamed block by block (its deepest level piece by piece).

Small scale (0.19 B UNet): one UNet call with CFG at 256x256 in fp32 costs 0.98 s of CPU on one thread, so about
0.55 s on 2 free cores (the shared 2-core box was too loaded to time two threads). Tiny: 13 ms a step.
"""
from __future__ import annotations

from itertools import chain, zip_longest
from typing import Any

from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.diffusers_family import DiffusersFamily
from families.encoders import CLIP_G, CLIP_L, FULL_KL, SMALL_KL, clip_config, clip_text, kl_vae_config
from families.synthetic import ModuleBuilder
from families.tokenizers import clip_tokenizer
from families.units import block_lists

# (CLIP-L, CLIP-bigG) at each scale; SD3 uses the same pair.
CLIP_PAIR = {
    "tiny": (clip_config(hidden=32, layers=5, heads=4), clip_config(hidden=32, layers=5, heads=4)),
    "small": (clip_config(hidden=64, layers=4, heads=2), clip_config(hidden=128, layers=4, heads=2)),
    "full": (CLIP_L, CLIP_G),
}
_UNET_XL = dict(in_channels=4, out_channels=4, down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 2,
                up_block_types=("CrossAttnUpBlock2D",) * 2 + ("UpBlock2D",), layers_per_block=2,
                use_linear_projection=True, addition_embed_type="text_time", norm_num_groups=32)
UNET = {
    "tiny": dict(block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                 transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
                 cross_attention_dim=64, norm_num_groups=1),
    # cross = 64 + 128 (the two CLIP widths); add-embedding input = 6 * 64 + 128 (time ids + pooled bigG)
    "small": dict(_UNET_XL, sample_size=32, block_out_channels=(128, 256, 512), attention_head_dim=(2, 4, 8),
                  transformer_layers_per_block=(1, 2, 4), cross_attention_dim=192, addition_time_embed_dim=64,
                  projection_class_embeddings_input_dim=512),
    "full": dict(_UNET_XL, sample_size=128, act_fn="silu", block_out_channels=(320, 640, 1280),
                 attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816, norm_eps=1e-5),
}
VAE = {
    "tiny": kl_vae_config((32, 64), latent=4, layers=1, sample_size=128),
    "small": kl_vae_config(SMALL_KL, latent=4, layers=1, scaling_factor=0.13025),
    "full": kl_vae_config(FULL_KL, latent=4, sample_size=1024, scaling_factor=0.13025),
}
DEFAULTS = {"tiny": RunDefaults(2, 32, 32), "small": RunDefaults(2, 256, 256), "full": RunDefaults(30, 1024, 1024)}


def block_pieces(prefix: str, block: nn.Module) -> list[tuple[str, nn.Module]]:
    """Resnets, attentions and resamplers of a UNet block, in the order its forward calls them."""
    resnets = [(f"{prefix}.resnets.{i}", m) for i, m in enumerate(block.resnets)]
    attentions = [(f"{prefix}.attentions.{i}", m) for i, m in enumerate(getattr(block, "attentions", []))]
    pieces = [piece for piece in chain.from_iterable(zip_longest(resnets, attentions)) if piece is not None]
    for kind in ("downsamplers", "upsamplers"):
        pieces += [(f"{prefix}.{kind}.{i}", m) for i, m in enumerate(getattr(block, kind, None) or [])]
    return pieces


@FAMILIES.register("sdxl")
class SDXL(DiffusersFamily):
    """SDXL base 1.0 (UNet2DConditionModel, 2.57 B parameters at full scale)."""

    name = "sdxl"
    variants = ("base",)
    size_multiple = 8
    pipeline_class = StableDiffusionXLPipeline
    stages = (("text_encoder", "encoder", ("forward",)), ("text_encoder_2", "encoder", ("forward",)),
              ("unet", "denoiser", ("forward",)), ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        return DEFAULTS[scale]

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        clip_l, clip_g = CLIP_PAIR[scale]
        return dict(
            text_encoder=clip_text(build, clip_l), tokenizer=clip_tokenizer(),
            text_encoder_2=clip_text(build, clip_g, with_projection=True), tokenizer_2=clip_tokenizer(),
            unet=build(lambda: UNet2DConditionModel(**UNET[scale])), vae=build(lambda: AutoencoderKL(**VAE[scale])),
            scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                             steps_offset=1, timestep_spacing="leading"),
            image_encoder=None, feature_extractor=None, add_watermarker=False)

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        """Whole blocks, except the deepest level (10-layer transformers at full scale), streamed piece by piece."""
        blocks = [*block_lists(module, "down_blocks"), ("mid_block", module.mid_block),
                  *block_lists(module, "up_blocks")]
        deepest = {f"down_blocks.{len(module.down_blocks) - 1}", "mid_block", "up_blocks.0"}
        return [unit for prefix, block in blocks
                for unit in (block_pieces(prefix, block) if prefix in deepest else [(prefix, block)])]

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        return dict(prompt=args.prompt, num_inference_steps=args.steps, height=args.height, width=args.width,
                    guidance_scale=5.0, output_type="pt")
