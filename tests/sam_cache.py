"""A small SAM 2 checkpoint in a Hugging Face cache, built offline: the video model's format, as
the hub's facebook/sam2.1-hiera-* repos ship it (config.json with model_type sam2_video,
model.safetensors), in huggingface_hub's layout (blobs, snapshots/REV, refs/main). The layers are
a few channels wide, so loading it and a click take milliseconds; the weights are random."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from seglib.edit import sam

TINY_VISION = dict(
    backbone_config=dict(model_type="sam2_hiera_det_model", hidden_size=8, blocks_per_stage=[1, 1, 2, 1],
                         embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 1, 1],
                         global_attention_blocks=[3]),
    backbone_channel_list=[64, 32, 16, 8], fpn_hidden_size=32)


def tiny_video_model(seed: int = 0):
    import torch
    from transformers import Sam2VideoConfig, Sam2VideoModel

    torch.manual_seed(seed)
    config = Sam2VideoConfig(
        vision_config=TINY_VISION, prompt_encoder_config=dict(hidden_size=32),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, iou_head_hidden_dim=32, num_attention_heads=2),
        memory_attention_hidden_size=32, memory_encoder_hidden_size=32, memory_encoder_output_channels=16,
        mask_downsampler_embed_dim=32, memory_fuser_embed_dim=32)
    return Sam2VideoModel(config)


def fake_sam2_cache(cache: Path, name: str = sam.DEFAULT, seed: int = 0) -> Path:
    """Put a tiny random SAM 2 under ``name``'s repo in the hub cache at ``cache``; its snapshot folder."""
    repo = sam.repo_of(name)
    commit = hashlib.sha1(repo.encode()).hexdigest()
    folder = Path(cache) / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / commit
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    with tempfile.TemporaryDirectory() as tmp:
        tiny_video_model(seed).save_pretrained(tmp)
        for fname in sam.FILES:
            data = (Path(tmp) / fname).read_bytes()
            blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snap / fname).unlink(missing_ok=True)
            (snap / fname).symlink_to(os.path.relpath(blob, snap))
    return snap
