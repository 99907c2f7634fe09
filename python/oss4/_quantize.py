"""oss4.quantize: `oss4 quantize` from Python (the same quantize_checkpoint), with a progress bar."""

from __future__ import annotations

import os
from typing import List, Optional, Union

from . import _core
from ._progress import CallbackBar


def quantize(src: Union[str, "os.PathLike[str]"], dst: Union[str, "os.PathLike[str]"], method: str = "amax",
             scope: str = "all", lm_head: str = "bf16", calibration: Optional[Union[str, List[List[int]]]] = None,
             progress: bool = True) -> None:
    """Writes src (MXFP4, BF16 or ModelOpt fake-quant) to dst in ModelOpt's exported NVFP4 layout.

    method: amax | transcode | mse; scope: all | experts; lm_head: bf16 | nvfp4; calibration: None, "builtin" or
    prompts as token-id lists (records input scales). dst must not exist. The GIL is released while it runs.
    """
    bar = CallbackBar(f"quantize ({method})", "B", progress)
    try:
        _core.quantize(os.fspath(src), os.fspath(dst), method, scope, lm_head, calibration, bar)
    finally:
        bar.close()
