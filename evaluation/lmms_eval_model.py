"""ProLongVid as an lmms-eval 0.7.x model, with the kit's protocol (see :mod:`evaluation.generation`).

Registered as ``prolongvid`` through :mod:`evaluation.lmms_eval_plugin`. Model arguments (``--model_args``):
``pretrained`` (Hub id or directory, required), ``num_frames`` (default 32; upstream's linspace over native
frames), ``fps`` (sample F fps capped at ``num_frames`` instead), ``dtype`` (``float16`` default, ``bfloat16``,
``float32``), ``frame_cache`` (a dataset_builder frame cache directory), ``device``.

Like lmms-eval's own models it decodes each video inside ``generate_until``; the built-in runner
(``python -m evaluation run``) overlaps decoding with generation instead.

Example:
    lmms-eval --model prolongvid --model_args pretrained=path/to/ckpt,num_frames=64,dtype=bfloat16 \\
        --tasks videomme,mlvu_dev,longvideobench_val_v --batch_size 1 --output_path logs/
"""

from __future__ import annotations

import os

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm.auto import tqdm

from .generation import generate_reply, load_model_and_processor, prepare_inputs, read_frames

# upstream's llava_onevision wrapper generates this many tokens when a task sets no max_new_tokens
DEFAULT_MAX_NEW_TOKENS = 1024


class ProLongVidLmmsEval(lmms):
    """lmms-eval model answering video ``generate_until`` requests with a ProLongVid checkpoint."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        num_frames: int = 32,
        fps: float | None = None,
        dtype: str = "float16",
        frame_cache: str | None = None,
        device: str | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if int(batch_size) != 1:
            raise ValueError(f"prolongvid answers one question at a time: pass --batch_size 1, not {batch_size}")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState

            state = PartialState(cpu=not torch.cuda.is_available())  # CPU: gloo processes
            self._rank, self._world_size = state.process_index, state.num_processes
            device = device or state.device
        self.num_frames, self.fps = int(num_frames), None if fps is None else float(fps)
        self.model, self.processor = load_model_and_processor(str(pretrained), dtype, device)
        self.frame_cache = None
        if frame_cache is not None:
            from processing.frame_cache import FrameCache

            self.frame_cache = FrameCache(frame_cache)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        replies = []
        for request in tqdm(requests, disable=self.rank != 0, desc="prolongvid"):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            if len(visuals) != 1 or not isinstance(visuals[0], (str, os.PathLike)):
                raise ValueError(
                    f"task {task}: prolongvid answers questions about one video file; doc_to_visual gave {visuals!r}"
                )
            frames, _ = read_frames(visuals[0], self.num_frames, self.fps, self.frame_cache)
            inputs = prepare_inputs(self.processor, frames, context, self.model.dtype)
            reply = generate_reply(
                self.model, self.processor, inputs, int(gen_kwargs.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
            )
            for stop in gen_kwargs.get("until") or []:
                if stop:
                    reply = reply.split(stop)[0]
            replies.append(reply)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), reply)
        return replies

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError("prolongvid supports generate_until tasks only (e.g. videomme, mlvu_dev)")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("prolongvid supports single-round generate_until tasks only")

    @property
    def device(self) -> torch.device:
        return self.model.device


__all__ = ["ProLongVidLmmsEval"]
