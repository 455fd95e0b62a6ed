"""What a CUDA run would hit, caught on a CPU-only machine.

* every class score, logit and metric input stays float32 under bf16 autocast (CPU autocast runs the
  same casting rules as CUDA's): scores computed inside autocast equal the same scores outside it;
* SVIP's rollout attention comes from float32 logits;
* an evaluation slice with no image (more ranks than images) scores nothing instead of crashing;
* a training epoch waits for the device a bounded number of times, not once per step or loss term;
* images travel as uint8 and are normalised where they are used;
* ``train.amp=auto`` takes bf16 only on GPUs that compute it natively;
* ``train.deterministic`` sets every switch CUDA determinism needs (set with no GPU present);
* the process group: ``cpu:gloo,cuda:nccl`` on CUDA, with the configured timeout;
* sweep workers each get their own GPU;
* a run started under one device resumes under another with its recorded precision.

The distributed cases with a group bound as nccl binds are in ``tests/test_distributed.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.test_run_e2e import TINY, zslbench
from zslbench.config import resolve
from zslbench.engine import device as device_module

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")
LOGIT_KEYS = ("scores", "patch_logits", "patch_scores")  # model outputs that are logits or scores


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


def tiny(model: str, synth_root: Path, *overrides: str):
    """(config, run data) of ``model`` on the tiny synthetic benchmark."""
    from zslbench.engine.run_data import load_run_data

    cfg = resolve(model, "synth", "tiny", overrides=[f"data.root={synth_root}", "track.enabled=false", *overrides])
    return cfg, load_run_data(cfg)


def first_batch(cfg, data, train: bool = True) -> dict[str, torch.Tensor]:
    from zslbench.engine.batches import make_batches, to_device

    indices = data.split.split("trainval" if train else "test_unseen")[:8]
    batch = next(iter(make_batches(cfg, data, indices, train=train, device=CPU, precision="bf16")))
    batch.pop("global_size")
    return to_device(batch, CPU)


# --------------------------------------------------------------------------- float32 under autocast
@pytest.mark.parametrize("model", ["svip", "vit", "apn", "transzero"])
def test_scores_logits_and_loss_inputs_are_float32_under_bf16_autocast(model, synth_root, monkeypatch):
    from zslbench.catalogue import build_model

    cfg, data = tiny(model, synth_root)
    torch.manual_seed(0)
    net = build_model(cfg, data.info).train()
    batch = first_batch(cfg, data)
    seen: list[tuple[str, torch.dtype]] = []
    for name in ("cross_entropy", "binary_cross_entropy_with_logits", "log_softmax", "kl_div", "mse_loss"):
        original = getattr(F, name)

        def recording(*args, _name=name, _original=original, **kwargs):
            seen.append((_name, args[0].dtype))
            return _original(*args, **kwargs)

        monkeypatch.setattr(F, name, recording)
    classes = torch.as_tensor(data.info.class_attributes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = net(batch)
        inside = net.class_scores(output, classes)
        terms = net.losses(output, batch)
    outside = net.class_scores(output, classes)
    assert inside.dtype == torch.float32
    # the same numbers as outside autocast: a bf16 matmul, even one cast back to float32, would differ
    torch.testing.assert_close(inside, outside, rtol=0, atol=0)
    for key in LOGIT_KEYS:
        if key in output:
            assert output[key].dtype == torch.float32, key
    if "scores" in output:  # computed inside the forward pass (transzero): also exactly the float32 scores
        torch.testing.assert_close(output["scores"], net.class_scores(output, net.class_attributes), rtol=0, atol=0)
    assert seen and all(dtype == torch.float32 for _, dtype in seen), seen
    assert all(term.dtype == torch.float32 for term in terms.values()), {k: v.dtype for k, v in terms.items()}


def test_evaluation_scores_of_a_bf16_run_are_float32(synth_root):
    """Trainer.collect under bf16: class_scores (the metric input) leave the model as float32."""
    from zslbench.catalogue import build_model
    from zslbench.engine.trainer import EvalSets, Trainer

    cfg, data = tiny("svip", synth_root)
    torch.manual_seed(0)
    net = build_model(cfg, data.info)
    dtypes = []
    original = net.class_scores
    net.class_scores = lambda output, classes: dtypes.append(original(output, classes).dtype) or original(output, classes)
    split = data.split
    trainer = Trainer(cfg, data, net, CPU, split.split("trainval"), EvalSets(split.split("test_seen"),
                      split.split("test_unseen")), Path("unused"), precision="bf16")
    collected = trainer.collect("test_unseen", split.split("test_unseen"))
    assert dtypes and set(dtypes) == {torch.float32}
    assert collected["scores"].dtype == np.float32 and len(collected["scores"]) == len(split.split("test_unseen"))


def test_rollout_attention_weights_come_from_float32_logits():
    """bf16 logits rounded every attention weight (median 0.5 %, max 6 %) before the float32 softmax."""
    import timm

    from zslbench.backbones.vit import block_forward_with_attention

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=64, depth=1, num_heads=2,
                            num_classes=0)
    block, x = vit.blocks[0], torch.randn(4, 17, 64)
    with torch.no_grad():  # peaked attention, as a trained ViT's: logits up to about 9
        block.attn.qkv.weight.normal_(0, 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, weights = block_forward_with_attention(block, x)
        attn = block.attn  # q and k as the block computes them (bf16 under autocast)
        qkv = attn.qkv(block.norm1(x)).reshape(4, 17, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    assert q.dtype == torch.bfloat16
    exact = ((q.float() * attn.scale) @ k.float().transpose(-2, -1)).softmax(-1)
    rounded = ((q * attn.scale) @ k.transpose(-2, -1)).float().softmax(-1)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, exact, rtol=0, atol=1e-6)
    error = (rounded - exact).abs() / exact
    assert error.median() > 1e-3 and error.max() > 1e-2  # bf16 logits: ≈ 0.5 % median, 5 % max; the check sees it


# --------------------------------------------------------------------------- evaluation slices
def test_an_empty_evaluation_slice_scores_nothing(synth_root):
    """More ranks than images leaves a rank no image: it returns empty arrays (torch.cat([]) used to crash)."""
    from zslbench.catalogue import build_model
    from zslbench.engine.trainer import EvalSets, Trainer

    cfg, data = tiny("svip", synth_root)
    split = data.split
    trainer = Trainer(cfg, data, build_model(cfg, data.info), CPU, split.split("trainval"),
                      EvalSets(split.split("test_seen"), split.split("test_unseen")), Path("unused"))
    empty = trainer.collect("nothing", np.zeros(0, dtype=np.int64))
    assert empty["scores"].shape == (0, data.info.num_classes) and empty["labels"].shape == (0,)


def _collect_one_image(rank: int, world: int, port: int, root: str, out: str) -> None:
    """One rank of a 2-process job scoring a 1-image set (rank 0's slice is empty), after an epoch whose last
    global batch holds 1 image (fewer than the ranks: every rank skips it)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from zslbench.catalogue import build_model
    from zslbench.engine.trainer import EvalSets, Trainer

    dist.init_process_group("cuda:gloo")  # bound as nccl binds: host tensors must take the host group
    try:
        cfg, data = tiny("svip", Path(root))
        torch.manual_seed(0)
        split = data.split
        trainer = Trainer(cfg, data, build_model(cfg, data.info), CPU, split.split("trainval"),
                          EvalSets(split.split("test_seen"), split.split("test_unseen")), Path("unused"))
        result = trainer.collect("one", split.split("test_unseen")[:1])
        cfg.train.batch_size, cfg.train.drop_last = len(split.split("trainval")) - 1, False
        last_batch_of_one = Trainer(cfg, data, build_model(cfg, data.info), CPU, split.split("trainval"),
                                    EvalSets(split.split("test_seen"), split.split("test_unseen")), Path("unused"))
        loss = last_batch_of_one.train_epoch(cfg.train.warmup_epochs)["train/loss"]
        if rank == 0:
            np.savez(out, loss=loss, **result)
    finally:
        dist.destroy_process_group()


def test_ranks_with_an_empty_slice_skip_it_in_training_and_get_the_others_scores(synth_root, tmp_path):
    import socket

    import torch.multiprocessing as mp

    from zslbench.catalogue import build_model
    from zslbench.engine.trainer import EvalSets, Trainer

    cfg, data = tiny("svip", synth_root)  # generates the data once, before the ranks read it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_collect_one_image, args=(2, port, str(synth_root), str(tmp_path / "rank0.npz")), nprocs=2)
    gathered = np.load(tmp_path / "rank0.npz")
    torch.manual_seed(0)
    split = data.split
    alone = Trainer(cfg, data, build_model(cfg, data.info), CPU, split.split("trainval"),
                    EvalSets(split.split("test_seen"), split.split("test_unseen")), Path("unused"))
    expected = alone.collect("one", split.split("test_unseen")[:1])
    assert gathered["scores"].shape == (1, data.info.num_classes)
    np.testing.assert_allclose(gathered["scores"], expected["scores"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(gathered["labels"], expected["labels"])
    assert np.isfinite(gathered["loss"])  # the 1-image global batch was skipped, not trained on an empty slice


# --------------------------------------------------------------------------- no per-step waits
def test_a_training_epoch_waits_for_the_device_a_bounded_number_of_times(synth_root, monkeypatch):
    """Reading a tensor's value on the host (float(), item(), tolist(), bool()) waits for an accelerator. The loop
    used to do it 2 + (number of loss terms) times per step; now once per FINITE_CHECK_EVERY steps and per epoch.
    Counted: reads made by zslbench's code (Adam's own step counter lives in host memory on every device)."""
    from zslbench.catalogue import build_model
    from zslbench.engine import trainer as trainer_module
    from zslbench.engine.trainer import EvalSets, Trainer

    cfg, data = tiny("svip", synth_root, "train.batch_size=4", "train.warmup_epochs=0")
    split = data.split
    torch.manual_seed(0)
    trainer = Trainer(cfg, data, build_model(cfg, data.info), CPU, split.split("trainval"),
                      EvalSets(split.split("test_seen"), split.split("test_unseen")), Path("unused"))
    monkeypatch.setattr(trainer_module, "FINITE_CHECK_EVERY", 10)
    reads = []
    for name in ("__float__", "item", "tolist", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if f"{os.sep}zslbench{os.sep}" in caller:
                reads.append(caller)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    trainer.train_epoch(0)
    steps = len(trainer.train_batches)
    assert steps > 2 * trainer_module.FINITE_CHECK_EVERY
    assert len(reads) <= steps // trainer_module.FINITE_CHECK_EVERY + 3, (len(reads), steps)


def test_images_travel_as_uint8_and_are_normalised_where_they_are_used(synth_root):
    from zslbench.data.images import build_transform
    from zslbench.engine.batches import LoaderBatches, MemoryBatches, make_batches, to_device

    for cache in ("true", "false"):
        cfg, data = tiny("svip", synth_root, f"data.cache_images={cache}")
        indices = data.split.split("test_unseen")[:3]
        source = make_batches(cfg, data, indices, train=False, device=CPU)
        assert isinstance(source, MemoryBatches if cache == "true" else LoaderBatches)
        batch = next(iter(source))
        assert batch["image"].dtype == torch.uint8
        transform = build_transform("synth", False, data.image_size)
        from PIL import Image

        expected = torch.stack([transform(Image.open(data.split.image_path(int(i), data.image_root)).convert("RGB"))
                                for i in indices])
        torch.testing.assert_close(to_device(batch, CPU)["image"], expected, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- precision and determinism
def pretend_gpu(monkeypatch, name: str, native_bf16: bool) -> torch.device:
    """A CUDA device as the precision rule sees it (no GPU needed)."""
    import contextlib

    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: native_bf16 or including_emulation)
    return torch.device("cuda", 0)


def test_auto_precision_takes_bf16_only_where_the_gpu_computes_it(monkeypatch):
    v100 = pretend_gpu(monkeypatch, "Tesla V100-SXM2-16GB", native_bf16=False)
    auto = device_module.choose_precision(v100, "auto")
    assert auto.precision == "fp32" and "no native bf16" in auto.reason and "V100" in auto.reason
    asked = device_module.choose_precision(v100, "bf16")
    assert asked.precision == "bf16" and "emulated" in asked.reason
    assert not device_module.uses_bf16(v100, "auto")
    a100 = pretend_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB", native_bf16=True)
    assert device_module.choose_precision(a100, "auto").precision == "bf16"
    assert device_module.choose_precision(a100, "off").precision == "fp32"
    assert device_module.choose_precision(CPU, "auto").precision == "fp32"


def test_deterministic_mode_sets_every_switch_cuda_needs():
    """Run in a fresh interpreter: the switches are process-wide. No GPU is needed to set them."""
    script = """
import json, os, torch
from zslbench.engine.device import configure_determinism
cuda = torch.device("cuda")
def state():
    return {"algorithms": torch.are_deterministic_algorithms_enabled(), "cudnn": torch.backends.cudnn.deterministic,
            "benchmark": torch.backends.cudnn.benchmark, "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "flash": torch.backends.cuda.flash_sdp_enabled(), "mem": torch.backends.cuda.mem_efficient_sdp_enabled(),
            "cudnn_sdp": torch.backends.cuda.cudnn_sdp_enabled()}
torch.backends.cudnn.benchmark = True
on = configure_determinism(cuda, "on"); first = state()
off = configure_determinism(cuda, "auto"); second = state()
print(json.dumps([on, first, off, second]))
"""
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    on, first, off, second = json.loads(proc.stdout.strip().splitlines()[-1])
    assert on is True and first == {"algorithms": True, "cudnn": True, "benchmark": False, "cublas": ":4096:8",
                                    "flash": False, "mem": False, "cudnn_sdp": False}
    assert off is False and second["algorithms"] is False and second["cudnn"] is False
    assert second["flash"] and second["mem"] and second["cudnn_sdp"]  # PyTorch's defaults back


@pytest.mark.parametrize("mode, expected", [("auto", True), ("off", False)])
def test_a_run_applies_its_determinism_setting(synth_root, mode, expected, tmp_path):
    from zslbench.engine.runner import run_one

    cfg, data = tiny("svip", synth_root, "train.epochs=1", "train.warmup_epochs=0", "train.max_steps_per_epoch=1",
                     f"train.deterministic={mode}", f"track.output_dir={tmp_path}")
    before = torch.are_deterministic_algorithms_enabled()
    try:
        run_one(cfg, quiet=True, data=data)
        assert torch.are_deterministic_algorithms_enabled() is expected
    finally:
        torch.use_deterministic_algorithms(before, warn_only=True)


def test_the_process_group_serves_both_device_kinds_with_the_configured_timeout(monkeypatch):
    import datetime

    import torch.distributed as dist

    from zslbench.engine import distributed

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.append({"device": index}))
    monkeypatch.setattr(distributed, "host_group", lambda: None)
    monkeypatch.setattr(distributed, "current", lambda: distributed.Dist(1, 2, 1))
    distributed.init_from_env("cuda", timeout_minutes=90)
    assert calls == [{"device": 1}, {"backend": "cpu:gloo,cuda:nccl", "timeout": datetime.timedelta(minutes=90)}]
    calls.clear()
    distributed.init_from_env("cpu")
    assert calls == [{"backend": "gloo", "timeout": datetime.timedelta(minutes=60)}]
    assert resolve("svip", "synth").train.dist_timeout == 60


def test_synthetic_data_workers_are_not_forked_from_a_process_holding_a_group(tmp_path, monkeypatch):
    """Rank 0 generates the synthetic benchmark after the process group (and its threads, CUDA) is up: the worker
    pool starts from a fork server, not a fork of that process."""
    from zslbench.data.synth import generate_synth, writing

    contexts = []
    original = writing.ProcessPoolExecutor

    def recording(*args, **kwargs):
        contexts.append(kwargs.get("mp_context"))
        return original(*args, **kwargs)

    monkeypatch.setattr(writing, "ProcessPoolExecutor", recording)
    generate_synth(tmp_path, "tiny", seed=3, workers=2)
    assert [context.get_start_method() for context in contexts] == ["forkserver"]


# --------------------------------------------------------------------------- sweep workers
@pytest.mark.parametrize("device, visible, expected", [
    ("auto", None, ["0", "1", "0"]),
    ("cuda", "3,5", ["3", "5", "3"]),
    ("cuda:1", None, [None, None, None]),  # one named GPU: as asked
    ("cpu", None, [None, None, None]),
])
def test_sweep_workers_each_get_their_own_gpu(monkeypatch, device, visible, expected):
    from types import SimpleNamespace

    from zslbench.sweeps import study

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    environments = []

    class Started:
        def __init__(self, argv, env):
            environments.append(env)

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(study.subprocess, "Popen", Started)
    cfg = resolve("svip", "synth", "tiny", overrides=[f"train.device={device}"])
    worker = SimpleNamespace(cfg=cfg, _log_best=lambda: None, parent=SimpleNamespace(finish=lambda status: None))
    opts = SimpleNamespace(workers=3, worker_argv=lambda spec, i, name: ["sweep", str(i)])
    study._launch_workers(opts, SimpleNamespace(cli_value="journal:x"), "study", worker, console=None)
    got = [env.get("CUDA_VISIBLE_DEVICES") for env in environments]
    assert got == (expected if expected[0] is not None else [visible] * 3)


# --------------------------------------------------------------------------- resume on another device
CHILD = Path(__file__).with_name("bf16_gpu_child.py")


def as_if_on_a_bf16_gpu(args: list[str], cwd: Path, env_extra: dict | None = None,
                        check: bool = True) -> subprocess.CompletedProcess:
    """``zslbench <args>`` whose precision rule answers as on a GPU with native bf16 (training on the CPU)."""
    env = {**os.environ, "ZSLBENCH_DATA": str(cwd / "data"), "NO_COLOR": "1", **(env_extra or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, str(CHILD), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_a_run_resumes_on_another_device_with_its_recorded_precision(tmp_path):
    import mlflow
    import yaml

    reference = tmp_path / "reference"
    reference.mkdir()
    as_if_on_a_bf16_gpu(["run", *TINY, "--set", "track.enabled=false", "--json", "out.json"], reference)
    killed = as_if_on_a_bf16_gpu(["run", *TINY], tmp_path, env_extra={"ZSLBENCH_FAULT": "train_step:12"},
                                 check=False)
    assert killed.returncode != 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    recorded = json.loads((run_dir / "precision.json").read_text())
    assert recorded["precision"] == "bf16" and (run_dir / "checkpoint.pt").exists()
    saved = yaml.safe_load((run_dir / "resolved.yaml").read_text())
    saved["train"]["device"] = "cuda:1"  # as a run started on a second GPU saves it
    (run_dir / "resolved.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))

    refused = zslbench(["run", "--resume", "last"], tmp_path, check=False)  # its saved device does not exist here
    assert refused.returncode == 2 and "--device" in refused.stderr and "Traceback" not in refused.stderr
    resumed = zslbench(["run", "--resume", "last", "--device", "cpu", "--json", "resumed.json"], tmp_path)
    assert "precision: bf16" in resumed.stdout and "kept on resuming on cpu, where it would be fp32" in resumed.stdout
    assert json.loads((run_dir / "precision.json").read_text()) == recorded
    # still bf16 after the resume: exactly the metrics of the run that never stopped
    done, expected = json.loads((tmp_path / "resumed.json").read_text()), json.loads((reference / "out.json").read_text())
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"):
        assert done[key] == expected[key], key
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_dir.name)
    assert run.data.tags["zslbench.precision"] == "bf16 autocast"
    assert "kept on resuming on cpu" in run.data.tags["zslbench.precision_reason"]
