"""oss4.quantize writes what `oss4 quantize` writes, byte for byte, and the result runs."""

import os

import pytest

import oss4
from conftest import run_cli


def files(d):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}


@pytest.mark.parametrize("method", ["amax", "transcode"])
def test_quantize_equals_cli(tiny_dir, tmp_path, method):
    py, cli = str(tmp_path / "py"), str(tmp_path / "cli")
    oss4.quantize(tiny_dir, py, method=method, progress=True)
    run_cli("quantize", "-m", tiny_dir, "-o", cli, "--method", method)
    a, b = files(py), files(cli)
    assert a.keys() == b.keys() and "model.safetensors" in a
    assert a == b
    if method == "amax":
        out = oss4.LLM(model=py, max_model_len=256).generate("nvfp4", oss4.SamplingParams(temperature=0, max_tokens=4,
                                                                                         ignore_eos=True), use_tqdm=False)
        assert len(out[0].outputs[0].token_ids) == 4


def test_quantize_errors(tiny_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        oss4.quantize(str(tmp_path / "missing"), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="method"):
        oss4.quantize(tiny_dir, str(tmp_path / "out"), method="gptq")
    with pytest.raises(ValueError, match="scope"):
        oss4.quantize(tiny_dir, str(tmp_path / "out"), scope="attention")
    with pytest.raises(FileExistsError):
        oss4.quantize(tiny_dir, str(tmp_path))  # never overwrites
