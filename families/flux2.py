"""FLUX.2 (dev, klein-4b, klein-9b): a Mistral 3 or Qwen3 encoder, double + single blocks streamed, 32-channel VAE."""
from __future__ import annotations

from typing import Any

from diffusers import (AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Pipeline,
                       Flux2Transformer2DModel)
from torch import nn

from families.base import FAMILIES, BuildSpec, GenerateArgs, RunDefaults
from families.checkpoint import load_pipeline
from families.diffusers_family import DiffusersFamily
from families.llm_encoders import QWEN3_4B, QWEN3_8B, mistral3, qwen3
from families.synthetic import ModuleBuilder
from families.tokenizers import qwen_tokenizer
from families.units import block_lists

_FULL = dict(patch_size=1, in_channels=128, attention_head_dim=128, timestep_guidance_channels=256, mlp_ratio=3.0,
             axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, eps=1e-6)
# small: the released layout (in 128, head 128, mlp 3.0, rope (32,)*4, double:single ratio) with 6 heads and fewer
# blocks; joint = 3 x the small encoder's 128. One step at 256x256 (256 image + 64 text tokens), fp32 on 2 cores:
# dev 0.62 s, klein-4b 0.40 s, klein-9b 0.41 s on an idle Xeon; about 0.8, 0.55 and 0.55 s on the 2-core EPYC
# dev box (1.33, 0.95 and 1.00 s of single-thread CPU time).
_SMALL = dict(_FULL, num_attention_heads=6, joint_attention_dim=384)
TRANSFORMER = {
    "dev": {"small": dict(_SMALL, num_layers=3, num_single_layers=18),
            "full": dict(_FULL, num_layers=8, num_single_layers=48, num_attention_heads=48, joint_attention_dim=15360)},
    "klein-4b": {"small": dict(_SMALL, num_layers=3, num_single_layers=12),
                 "full": dict(_FULL, num_layers=5, num_single_layers=20, num_attention_heads=24,
                              joint_attention_dim=7680)},
    "klein-9b": {"small": dict(_SMALL, num_layers=4, num_single_layers=12),
                 "full": dict(_FULL, num_layers=8, num_single_layers=24, num_attention_heads=32,
                              joint_attention_dim=12288)},
}
# tiny: diffusers' pipeline tests (joint 16 = the tiny encoder's hidden size x one output layer)
TINY = dict(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=16, timestep_guidance_channels=256, axes_dims_rope=(4, 4, 4, 4))
_VAE_1 = dict(down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,),
              layers_per_block=1, latent_channels=1, norm_num_groups=1, use_quant_conv=False,
              use_post_quant_conv=False, sample_size=32)
VAE = {"tiny": _VAE_1, "small": dict(block_out_channels=(32, 64, 128, 128), layers_per_block=1), "full": {}}
# hidden states of these encoder layers are concatenated (joint_attention_dim = 3 x hidden at small and full)
OUT_LAYERS = {"tiny": (1,), "small": (1, 2, 3)}
FULL_OUT_LAYERS = {"dev": (10, 20, 30), "klein-4b": (9, 18, 27), "klein-9b": (9, 18, 27)}
TEXT_TOKENS = {"tiny": 16, "small": 64, "full": 512}


@FAMILIES.register("flux2")
class Flux2(DiffusersFamily):
    """FLUX.2 (Flux2Transformer2DModel: dev 32.2 B, klein-4b 3.9 B, klein-9b 9.1 B parameters at full scale)."""

    name = "flux2"
    variants = ("dev", "klein-4b", "klein-9b")
    size_multiple = 16
    pipeline_class = Flux2Pipeline  # dev's; make_pipeline picks the class per variant
    stages = (("text_encoder", "encoder", ("forward",)), ("transformer", "denoiser", ("forward",)),
              ("vae", "decoder", ("decode",)))

    def defaults(self, variant: str, scale: str) -> RunDefaults:
        if scale == "full":
            return RunDefaults(50 if variant == "dev" else 4, 1024, 1024)
        return RunDefaults(2, 16, 16) if scale == "tiny" else RunDefaults(3, 256, 256)

    def make_pipeline(self, spec: BuildSpec) -> Any:
        """dev and klein use different pipeline classes."""
        cls = Flux2Pipeline if spec.variant == "dev" else Flux2KleinPipeline
        if spec.weights is not None:
            return load_pipeline(cls, spec.weights, self.name, spec.dtype, spec.weights_device)
        return cls(**self.synthetic_components(ModuleBuilder(spec), spec.variant, spec.scale))

    def synthetic_components(self, build: ModuleBuilder, variant: str, scale: str) -> dict[str, Any]:
        dev = variant == "dev"
        config = dict(TINY if scale == "tiny" else TRANSFORMER[variant][scale], guidance_embeds=dev)
        if dev:
            text_encoder, extra = mistral3(build, scale), {}
        else:
            text_encoder = qwen3(build, scale, QWEN3_4B if variant == "klein-4b" else QWEN3_8B, causal=True)
            extra = dict(is_distilled=True)
        return dict(
            text_encoder=text_encoder, tokenizer=qwen_tokenizer(),  # stands in for Mistral's PixtralProcessor too
            transformer=build(lambda: Flux2Transformer2DModel(**config)),
            vae=build(lambda: AutoencoderKLFlux2(**VAE[scale])),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True), **extra)

    def units(self, name: str, module: nn.Module, variant: str) -> list[tuple[str, nn.Module]]:
        return block_lists(module, "transformer_blocks", "single_transformer_blocks")

    def call_kwargs(self, args: GenerateArgs, spec: BuildSpec) -> dict[str, Any]:
        scale = "full" if spec.weights is not None else spec.scale  # a checkpoint is the released model
        layers = FULL_OUT_LAYERS[spec.variant] if scale == "full" else OUT_LAYERS[scale]
        # dev: guidance is embedded (one transformer call a step); klein is step-distilled (no CFG)
        return dict(prompt=args.prompt, num_inference_steps=args.steps, height=args.height, width=args.width,
                    guidance_scale=4.0 if spec.variant == "dev" else 1.0, max_sequence_length=TEXT_TOKENS[scale],
                    text_encoder_out_layers=layers, output_type="pt")
