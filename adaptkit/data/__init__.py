"""Manifests, audio and batches: from JSONL lines to padded tensors."""
