"""Measure the synthetic benchmark: is it a meaningful ZSL task, does clutter hurt, do masks fit?

Run from the repository root (CPU; about 10 minutes on 2 cores)::

    .venv/bin/python docs/synth/measure.py            # writes docs/synth/results.json and overlay PNGs
    .venv/bin/python docs/synth/measure.py --skip-vit # the quick parts only
    .venv/bin/python docs/synth/measure.py --grid 1,2,3x1,2 --results grid.json  # (b) over more seeds

What it does (numbers in docs/synth/README.md):

(a) two simple models on the seen classes' trainval images, evaluated by ZSL T1 (macro per-class
    accuracy on test_unseen, nearest unseen class attribute vector):
    ridge regression from raw pixels to the class attribute vector, and a tiny CNN with an
    attribute head;
(b) a tiny ViT (timm, 64 px, patch 8, dim 96, depth 4, heads 3, attribute head on mean-pooled
    patch tokens, logits σ·a·Sᵀ with σ = 5, Adam 5e-4, 10 epochs) — a model that pools over all
    patches — on the benchmark with and without distractor clutter;
(c) overlays of part masks, the patch grid and the super-patch grid on a few images, plus how
    many super-patches the creature covers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from zslbench.data.masks import creature_superpatches, load_mask
from zslbench.data.synth import PARTS, PRESETS, generate_synth
from zslbench.data.xlsa17 import load_split

HERE = Path(__file__).resolve().parent
PATCH = 8  # the default model's patch size (config.SYNTH_VIT)
SIGMA = 5.0


# --------------------------------------------------------------------------- data
def load_arrays(directory: Path) -> dict:
    """Images [N, S, S, 3] uint8, labels, splits and row-normalised class attributes of one dataset."""
    from PIL import Image

    split = load_split(directory.name, directory.parent)
    images = np.stack([np.asarray(Image.open(split.image_path(i)).convert("RGB")) for i in range(split.num_images)])
    return {"split": split, "images": images, "labels": split.labels, "S": split.class_attributes.astype(np.float64)}


def macro_t1(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present of per-class accuracy."""
    classes = np.unique(labels)
    return float(np.mean([(predicted[labels == c] == c).mean() for c in classes]))


def zsl_t1(attributes: np.ndarray, labels: np.ndarray, S: np.ndarray, candidates: np.ndarray) -> float:
    """T1 with argmax of a·Sᵀ among ``candidates`` (ties → lowest index)."""
    scores = attributes @ S[candidates].T
    return macro_t1(candidates[np.argmax(scores, axis=1)], labels)


# --------------------------------------------------------------------------- (a) ridge on pixels
def ridge_t1(data: dict) -> dict:
    """Dual-form ridge regression pixels → class attribute vector; λ chosen on the val protocol."""
    split, X = data["split"], data["images"].reshape(len(data["images"]), -1).astype(np.float64) / 255.0
    labels, S = data["labels"], data["S"]
    mean = X[split.split("trainval")].mean(0)
    X = X - mean

    def fit_predict(train: np.ndarray, test: np.ndarray, lam: float) -> np.ndarray:
        gram = X[train] @ X[train].T
        alpha = np.linalg.solve(gram + lam * np.eye(len(train)), S[labels[train]])
        return (X[test] @ X[train].T) @ alpha

    protocol = split.val_protocol()
    val_classes = protocol["val_classes"]
    grid = [1.0, 10.0, 100.0, 1000.0, 10000.0]
    val_scores = {lam: zsl_t1(fit_predict(protocol["train"], protocol["val_unseen"], lam),
                              labels[protocol["val_unseen"]], S, val_classes) for lam in grid}
    best = max(grid, key=lambda lam: (val_scores[lam], -lam))
    test = split.split("test_unseen")
    t1 = zsl_t1(fit_predict(split.split("trainval"), test, best), labels[test], S, split.unseen_classes)
    return {"t1": t1, "lambda": best, "val_t1": val_scores[best]}


# --------------------------------------------------------------------------- torch models
def tiny_cnn(num_attributes: int):
    import torch.nn as nn

    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 96), nn.Conv2d(96, 128, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_attributes))


def tiny_vit(num_attributes: int, image_size: int):
    """The default synth backbone (config.SYNTH_VIT), attribute head on mean-pooled patch tokens."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=image_size, patch_size=PATCH, embed_dim=96, depth=4, num_heads=3,
                             num_classes=num_attributes, global_pool="avg", class_token=True)


def train_attribute_model(model, data: dict, epochs: int, lr: float, seed: int = 0, batch_size: int = 64) -> dict:
    """Train with CE over σ·a·S_seenᵀ on trainval (random h-flips); T1 on test_unseen."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    split = data["split"]
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    images = (images - mean) / std
    S = torch.from_numpy(data["S"]).float()
    seen = torch.from_numpy(split.seen_classes)
    lookup = torch.full((len(S),), -1, dtype=torch.long)
    lookup[seen] = torch.arange(len(seen))
    labels = torch.from_numpy(data["labels"])
    train = torch.from_numpy(split.split("trainval"))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    history = []
    for epoch in range(epochs):
        model.train()
        order = train[torch.randperm(len(train), generator=generator)]
        total = 0.0
        for b in range(len(order) // batch_size):
            take = order[b * batch_size:(b + 1) * batch_size]
            x = images[take]
            flip = torch.rand(len(take), generator=generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            logits = SIGMA * model(x) @ S[seen].T
            loss = F.cross_entropy(logits, lookup[labels[take]])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(round(total / max(1, len(order) // batch_size), 4))
    seconds = time.perf_counter() - start
    model.eval()

    def attributes_of(index: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            parts = [model(images[index[s:s + 256]]) for s in range(0, len(index), 256)]
        return torch.cat(parts).numpy().astype(np.float64)

    test, held_out = split.split("test_unseen"), split.split("test_seen")
    t1 = zsl_t1(attributes_of(test), data["labels"][test], data["S"], split.unseen_classes)
    # seen-class recognition on held-out images of the training classes (argmax among seen classes)
    seen_acc = zsl_t1(attributes_of(held_out), data["labels"][held_out], data["S"], split.seen_classes)
    return {"t1": t1, "seen_acc": seen_acc, "train_seconds": round(seconds, 1), "epochs": epochs, "loss": history}


# --------------------------------------------------------------------------- (c) overlays
PART_COLOURS = {1: (255, 0, 255), 2: (0, 255, 255), 3: (255, 255, 255), 4: (0, 0, 0)}


def overlay(image: np.ndarray, mask: np.ndarray, patch: int, zoom: int = 6) -> np.ndarray:
    """Image | image with part colours, patch grid (thin) and super-patch grid (thick, creature blocks marked)."""
    big = np.kron(image, np.ones((zoom, zoom, 1), dtype=np.uint8))
    tinted = big.astype(np.float64)
    big_mask = np.kron(mask, np.ones((zoom, zoom), dtype=np.uint8))
    for value, colour in PART_COLOURS.items():
        tinted[big_mask == value] = 0.45 * tinted[big_mask == value] + 0.55 * np.asarray(colour)
    tinted = tinted.astype(np.uint8)
    side = tinted.shape[0]
    step = patch * zoom
    for k in range(0, side + 1, step):
        edge = min(k, side - 1)
        tinted[edge, :] = tinted[:, edge] = (90, 90, 90)
    relevant = creature_superpatches(mask, patch)
    grid = mask.shape[0] // (2 * patch)
    for index, flag in enumerate(relevant):
        r, c = divmod(index, grid)
        y0, x0, span = r * 2 * step, c * 2 * step, 2 * step
        colour = (255, 230, 0) if flag else (30, 30, 30)
        for y in (y0, min(y0 + span, side) - 1):
            tinted[y, x0:x0 + span] = colour
        for x in (x0, min(x0 + span, side) - 1):
            tinted[y0:y0 + span, x] = colour
    gap = np.full((side, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([big, gap, tinted], axis=1)


def write_overlays(directory: Path, split, count: int = 3) -> list[str]:
    """A few overlay PNGs (two images each) under docs/synth/; returns their paths."""
    from PIL import Image

    test = split.split("test_unseen")
    rng = np.random.default_rng(1)
    written = []
    for n in range(count):
        rows = []
        for i in rng.choice(test, size=2, replace=False):
            image = np.asarray(Image.open(split.image_path(i)).convert("RGB"))
            mask = load_mask(directory / "masks" / Path(split.image_files[i]).relative_to("images"))
            rows.append(overlay(image, mask, PATCH))
            rows.append(np.full((6, rows[-1].shape[1], 3), 255, dtype=np.uint8))
        path = HERE / f"overlay_{n + 1}.png"
        Image.fromarray(np.concatenate(rows[:-1])).save(path, optimize=True)
        written.append(str(path.relative_to(HERE.parent.parent)))
    return written


def mask_statistics(directory: Path, split) -> dict:
    """How many of the P super-patches the creature touches, and the creature's share of pixels."""
    counts, parts = [], []
    for i in range(split.num_images):
        mask = load_mask(directory / "masks" / Path(split.image_files[i]).relative_to("images"))
        counts.append(int(creature_superpatches(mask, PATCH).sum()))
        parts.append(np.bincount(mask.ravel(), minlength=len(PARTS) + 1) / mask.size)
    counts_array, part_fraction = np.asarray(counts), np.mean(parts, axis=0)
    return {"superpatches": int((mask.shape[0] // PATCH // 2) ** 2),
            "creature_superpatches_mean": round(float(counts_array.mean()), 2),
            "creature_superpatches_min": int(counts_array.min()), "creature_superpatches_max": int(counts_array.max()),
            "creature_pixel_fraction_mean": round(float(1.0 - part_fraction[0]), 3),
            "part_pixel_fraction_mean": {part: round(float(part_fraction[k + 1]), 3) for k, part in enumerate(PARTS)}}


def clutter_grid(work: Path, data_seeds: list[int], train_seeds: list[int], epochs: int) -> list[dict]:
    """(b) repeated: the tiny ViT with and without clutter over several dataset and training seeds."""
    rows = []
    for data_seed in data_seeds:
        for preset in (PRESETS["default"], PRESETS["default"].without_clutter()):
            data = load_arrays(generate_synth(work, preset, data_seed).directory)
            for train_seed in train_seeds:
                result = train_attribute_model(tiny_vit(data["split"].num_attributes, 64), data, epochs, lr=5e-4,
                                               seed=train_seed)
                rows.append({"data_seed": data_seed, "clutter": preset.has_clutter, "train_seed": train_seed,
                             "t1": round(result["t1"], 4), "seen_acc": round(result["seen_acc"], 4),
                             "train_seconds": result["train_seconds"]})
                print("grid", rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="where to generate the datasets [a temp dir]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vit-epochs", type=int, default=10)
    parser.add_argument("--cnn-epochs", type=int, default=12)
    parser.add_argument("--skip-vit", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=HERE / "results.json", help="where to write the numbers")
    parser.add_argument("--no-overlays", action="store_true", help="do not (re)write the overlay PNGs")
    parser.add_argument("--grid", default="", help="only (b) over dataset seeds × training seeds, e.g. 1,2,3x1,2")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="synth-measure-"))
    results: dict = {"seed": args.seed, "threads": args.threads}
    if args.grid:
        data_seeds, train_seeds = (list(map(int, part.split(","))) for part in args.grid.split("x"))
        results["clutter_grid"] = clutter_grid(work, data_seeds, train_seeds, args.vit_epochs)
        args.results.write_text(json.dumps(results, indent=1) + "\n")
        return

    timings = {}
    for name, preset in (("default", PRESETS["default"]), ("default-noclutter", PRESETS["default"].without_clutter()),
                         ("tiny", PRESETS["tiny"])):
        result = generate_synth(work, preset, args.seed, force=True)
        timings[name] = {"seconds": round(result.seconds, 2), **result.counts}
        print(f"generated {name}: {result.counts['images']} images in {result.seconds:.1f} s", flush=True)
    results["generation"] = timings

    data = load_arrays(work / "synth")
    split = data["split"]
    results["chance_t1"] = 1.0 / len(split.unseen_classes)
    results["ridge"] = ridge_t1(data)
    print("ridge", results["ridge"], flush=True)

    results["cnn"] = train_attribute_model(tiny_cnn(split.num_attributes), data, args.cnn_epochs, lr=1e-3,
                                           seed=args.seed)
    print("cnn", results["cnn"], flush=True)

    if not args.skip_vit:
        results["vit_clutter"] = train_attribute_model(tiny_vit(split.num_attributes, 64), data, args.vit_epochs,
                                                       lr=5e-4, seed=args.seed)
        print("vit (clutter)", results["vit_clutter"], flush=True)
        clean = load_arrays(work / "synth-default-noclutter")
        results["vit_no_clutter"] = train_attribute_model(tiny_vit(split.num_attributes, 64), clean,
                                                          args.vit_epochs, lr=5e-4, seed=args.seed)
        print("vit (no clutter)", results["vit_no_clutter"], flush=True)

    results["masks"] = mask_statistics(work / "synth", split)
    if not args.no_overlays:
        results["overlays"] = write_overlays(work / "synth", split)
    print("masks", results["masks"], results.get("overlays"), flush=True)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "generation"}, indent=1))


if __name__ == "__main__":
    main()
