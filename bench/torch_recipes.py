#!/usr/bin/python3
"""PyTorch reference for the library's real training recipes (Debian's python3-torch 1.13,
torchvision 0.14, h5py, numpy, PIL): same images, same split, same recipe as the TypeScript
side, so accuracy and speed can be compared in one run.

    /usr/bin/python3 bench/torch_recipes.py < job.json > result.json   # progress on stderr
    /usr/bin/python3 bench/torch_recipes.py --check-forward [keras_model.h5] > features.json

job.json:

    {"recipe": "brain-finetune" | "simple-cnn-letterbox" | "busi",
     "threads": 2, "epochs": 6, "batch": 32, "seed": 0,
     "size": 224, "channels": 3,            # optional: default 224/3 (MobileNetV2), 128/1 (SimpleCNN)
     "fit": "contain",                      # optional: "contain" (letterbox, default) or "fill"
     "classes": ["glioma", "meningioma", "notumor", "pituitary"], "normal_class": "notumor",
     "train": [["/abs/path.jpg", 0], ...], "validation": [[path, label], ...],
     "test": [[path, label], ...],          # optional
     "h5": "/work/shared/models/teachable-machine-busi/keras_model.h5",
     "lr": 0.001, "optimizer": "adam" | "adabelief",
     "bn_momentum": 0.1,                    # optional, trainable MobileNetV2 BNs (PyTorch convention)
     "max_images": null}                    # optional: seeded random subset of at most N per list

The result is one JSON object: recipe, threads, torch_version, per-epoch metrics (train loss and
accuracy, seconds and images/s of the training loop, validation accuracy/loss/macro F1, missed
findings = abnormal true class predicted as `normal_class`, confusion matrix [true][predicted]),
total_seconds, images_per_second (training images over the training loops of all epochs,
validation excluded), phases (seconds spent waiting on the data loader, in forward + loss,
backward, optimizer.step, and evaluation; `decode` is the part of data + eval spent decoding
files) and, when the job has a test list, the same metrics on it.

Recipes (mirroring the TypeScript side):
  brain-finetune        Keras MobileNetV2 alpha 0.35 (Keras layer names and layout, ImageNet
                        weights from the Teachable Machine .h5), head GAP -> dropout 0.2 ->
                        Linear (Glorot uniform, zero bias); trains block_13_expand onward + head,
                        earlier BatchNorms stay in inference mode; letterbox 224 RGB,
                        x / 127.5 - 1, random horizontal flip; Adam(lr) + cosine per epoch.
  simple-cnn-letterbox  src/models/simple-cnn.ts: 3 x (conv 3x3 no bias, BN, ReLU, max-pool 2),
                        flatten, dense 128 ReLU, dropout 0.5, dense; He-normal (truncated at
                        2 std, as tfjs) and Glorot-uniform initialisers; Keras BN momentum 0.99 /
                        eps 1e-3; letterbox 128 grayscale, x / 255, flip + rotation 10 degrees;
                        Adam or AdaBelief, constant learning rate.
  busi                  the brain-finetune network and trainable layers; letterbox 224 RGB,
                        GaussianBlur(5, sigma 0.1-2), RandomErasing(p 0.5), Normalize(0.5, 0.5)
                        on x / 255; optimizer from the job, cosine per epoch.

Images are decoded with PIL like the TypeScript side's sharp `resize(w, h, {fit: 'contain',
kernel: 'lanczos3'})`: scale the longest side to `size` (the other rounded half up), resample as
libvips does (see sharp_resize), paste centred on black; alpha is flattened onto black and EXIF
orientation applied, as sharp does. Checked against sharp on 131 images of both data sets at
224x224x3 and 128x128x1: mean absolute difference 0.17 grey levels, 0.1% of values off by more than
2 (JPEG decoding and rounding); grayscale is PIL's ITU-R 601 luma where sharp uses libvips's
'b-w', identical on these (grey) images.

Each image is decoded once, lazily, the first time it is used, and the uint8 array is cached (the
TypeScript side caches after the first epoch too, so epoch 1 includes decoding on both sides);
augmentation runs per epoch on the cached arrays, per image, with torch's global RNG seeded by
`seed`. The DataLoader uses num_workers=0 and torch.set_num_threads(threads): the whole
process gets `threads` cores, as the TypeScript side does, instead of worker processes on top.
Shuffling uses a torch.Generator seeded by `seed`.

Known differences from the TypeScript side: random streams (shuffle, dropout, augmentation) are
torch's, not the library's; trainable MobileNetV2 BatchNorms default to PyTorch's momentum 0.1
where src/models/mobilenet-v2.ts keeps Keras's 0.999 (pass "bn_momentum": 0.001 to match); PyTorch
updates running variances with the unbiased batch variance, Keras/tfjs with the biased one;
SimpleCNN flattens NCHW rather than NHWC (a fixed permutation of the dense layer's inputs, same
initial distribution); no class weights or early stopping; 'fill' resizing is plain PIL Lanczos.

--check-forward builds the MobileNetV2-0.35 backbone, loads the .h5 weights and prints (JSON) the
mean, std, first values and all 1280 globally pooled features for a fixed input
(np.linspace(-1, 1) reshaped 1x224x224x3 NHWC); bench/check-torch-forward.ts prints the same for
the TypeScript model.
"""
import ast
import json
import resource
import math
import os
import random
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image, ImageOps

DEFAULT_H5 = "/work/shared/models/teachable-machine-busi/keras_model.h5"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def make_divisible(v, divisor=8, min_value=None):
    """Keras's `_make_divisible` (src/models/mobilenet-v2.ts `makeDivisible`)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def keras_bn(c, momentum):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=momentum)


class MobileNetV2Keras(nn.Module):
    """Keras's MobileNetV2 (include_top=False), layer for layer as src/models/mobilenet-v2.ts,
    NCHW. Every layer is stored under its Keras name in `self.layers` so .h5 weights load by name.
    Stride-2 convolutions are preceded by Keras's `correct_pad` zero padding (even side: 0 before,
    1 after) and use 'valid' padding; stride-1 3x3 depthwise convs are 'same' (padding 1)."""

    SPEC = [(1, 1, 16), (6, 2, 24), (6, 1, 24), (6, 2, 32), (6, 1, 32), (6, 1, 32), (6, 2, 64),
            (6, 1, 64), (6, 1, 64), (6, 1, 64), (6, 1, 96), (6, 1, 96), (6, 1, 96), (6, 2, 160),
            (6, 1, 160), (6, 1, 160), (6, 1, 320)]  # (expansion, stride, filters), blocks 0..16

    def __init__(self, alpha=0.35, bn_momentum=0.1):
        super().__init__()
        L = nn.ModuleDict()
        self.order = []  # Keras topological order of the weighted layers

        def add(name, module):
            L[name] = module
            self.order.append(name)

        first = make_divisible(32 * alpha, 8)
        add("Conv1", nn.Conv2d(3, first, 3, stride=2, padding=0, bias=False))
        add("bn_Conv1", keras_bn(first, bn_momentum))
        self.blocks = []
        ch = first
        for i, (e, s, f) in enumerate(self.SPEC):
            prefix = f"block_{i}_" if i else "expanded_conv_"
            out = make_divisible(int(f * alpha), 8)
            hidden = ch
            if i:
                hidden = e * ch
                add(prefix + "expand", nn.Conv2d(ch, hidden, 1, bias=False))
                add(prefix + "expand_BN", keras_bn(hidden, bn_momentum))
            add(prefix + "depthwise", nn.Conv2d(hidden, hidden, 3, stride=s, padding=1 if s == 1 else 0,
                                                groups=hidden, bias=False))
            add(prefix + "depthwise_BN", keras_bn(hidden, bn_momentum))
            add(prefix + "project", nn.Conv2d(hidden, out, 1, bias=False))
            add(prefix + "project_BN", keras_bn(out, bn_momentum))
            self.blocks.append((prefix, bool(i), s, ch == out and s == 1))
            ch = out
        last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
        add("Conv_1", nn.Conv2d(ch, last, 1, bias=False))
        add("Conv_1_bn", keras_bn(last, bn_momentum))
        self.layers = L
        self.out_channels = last

    @staticmethod
    def correct_pad(x):
        h, w = x.shape[2], x.shape[3]
        return F.pad(x, (w % 2, 1, h % 2, 1))  # (left, right, top, bottom), Keras correct_pad

    def forward(self, x):
        L = self.layers
        x = F.relu6(L["bn_Conv1"](L["Conv1"](self.correct_pad(x))))
        for prefix, expand, stride, residual in self.blocks:
            inp = x
            if expand:
                x = F.relu6(L[prefix + "expand_BN"](L[prefix + "expand"](x)))
            if stride == 2:
                x = self.correct_pad(x)
            x = F.relu6(L[prefix + "depthwise_BN"](L[prefix + "depthwise"](x)))
            x = L[prefix + "project_BN"](L[prefix + "project"](x))
            if residual:
                x = inp + x
        return F.relu6(L["Conv_1_bn"](L["Conv_1"](x)))


def load_keras_h5(backbone, path):
    """Loads Keras .h5 weights by layer name (any nesting: `model_weights/<model>/<layer>/<w>:0`).
    Extra layers in the file (the Teachable Machine head) are ignored; every backbone weight must
    be found. Conv2D [kh, kw, in, out] -> [out, in, kh, kw]; DepthwiseConv2D [kh, kw, in, 1] ->
    [in, 1, kh, kw]. Returns the number of tensors loaded."""
    found = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                parts = name.split("/")
                found[(parts[-2], parts[-1].split(":")[0])] = np.array(obj)

        root.visititems(visit)
    loaded, missing = 0, []

    def put(param, value):
        t = torch.from_numpy(np.ascontiguousarray(value)).to(param.dtype)
        if tuple(t.shape) != tuple(param.shape):
            raise ValueError(f"shape mismatch: file {tuple(t.shape)} vs model {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(t)

    for name in backbone.order:
        m = backbone.layers[name]
        if isinstance(m, nn.Conv2d):
            key = (name, "depthwise_kernel") if m.groups > 1 else (name, "kernel")
            if key not in found:
                missing.append("/".join(key))
                continue
            w = found[key]
            put(m.weight, w.transpose(2, 3, 0, 1) if m.groups > 1 else w.transpose(3, 2, 0, 1))
            loaded += 1
        else:
            for wname, param in (("gamma", m.weight), ("beta", m.bias), ("moving_mean", m.running_mean),
                                 ("moving_variance", m.running_var)):
                if (name, wname) not in found:
                    missing.append(f"{name}/{wname}")
                    continue
                put(param, found[(name, wname)])
                loaded += 1
    if missing:
        raise ValueError(f"{path}: {len(missing)} backbone weights missing, e.g. {missing[:5]}")
    return loaded


class TransferNet(nn.Module):
    """src/models/transfer.ts: backbone -> global average pool -> dropout 0.2 -> dense."""

    def __init__(self, backbone, n_classes, dropout=0.2):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.out_channels, n_classes)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.head(self.dropout(self.backbone(x).mean(dim=(2, 3))))


def set_trainable_from(model, first_layer):
    """Like the library's unfreeze({from}): layers from `first_layer` onward (Keras order) and the
    head train; earlier ones are frozen. Returns the frozen modules, whose BatchNorms must stay in
    inference mode (call .eval() on them after every model.train())."""
    order = model.backbone.order
    start = order.index(first_layer)
    frozen = [model.backbone.layers[n] for n in order[:start]]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad = False
    return frozen


def he_normal_(w):
    """tfjs heNormal: truncated normal (at 2 std, no Keras 0.88 correction), std sqrt(2 / fan_in)."""
    fan_in = w.shape[1] * (w[0, 0].numel() if w.dim() > 2 else 1)
    std = math.sqrt(2.0 / fan_in)
    nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)


def simple_cnn(c, n, size, filters=(32, 64, 128), dense=128, dropout=0.5):
    """src/models/simple-cnn.ts with its defaults (batchNorm, pooling 'flatten'), as
    bench/torch_bench.py's simple_cnn plus Keras BN settings and the TS initialisers."""
    layers, ch = [], c
    for f in filters:
        conv = nn.Conv2d(ch, f, 3, padding=1, bias=False)
        he_normal_(conv.weight)
        layers += [conv, nn.BatchNorm2d(f, eps=1e-3, momentum=0.01), nn.ReLU(), nn.MaxPool2d(2)]
        ch = f
    s = size // (2 ** len(filters))
    hidden = nn.Linear(ch * s * s, dense)
    he_normal_(hidden.weight)
    nn.init.zeros_(hidden.bias)
    out = nn.Linear(dense, n)
    nn.init.xavier_uniform_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, nn.Flatten(), hidden, nn.ReLU(), nn.Dropout(dropout), out)


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------

def adabelief_class():
    """AdaBeliefRef from scripts/fixtures/adabelief.py (the fixture generator's reference of the
    official adabelief-pytorch 0.2 step): only its class definition is executed, not the script."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "fixtures", "adabelief.py")
    with open(path) as fh:
        tree = ast.parse(fh.read(), path)
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
            or (isinstance(n, ast.ClassDef) and n.name == "AdaBeliefRef")]
    ns = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    return ns["AdaBeliefRef"]


def make_optimizer(name, params, lr):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adabelief":
        # eps 1e-16, betas (0.9, 0.999), weight_decouple, rectify, weight_decay 0 (defaults).
        return adabelief_class()(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r} (adam or adabelief)")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

def sharp_resize(im, cw, ch, scale):
    """libvips's resize as sharp calls it for one uniform `scale` to a cw x ch output, with PIL.
    Measured against sharp 0.34 on this project's images: downscaling is Lanczos3 centred on
    the image (source extent cw / scale, centred); upscaling is libvips's affine with its bicubic
    interpolator, source x = i / scale - 0.5 (pixel centres on integers); edges are extended by
    copying (VIPS_EXTEND_COPY), where PIL alone would clip and renormalise the kernel."""
    w, h = im.size
    if scale > 1:
        kernel, x0, y0 = Image.BICUBIC, -0.5 / scale, -0.5 / scale
    else:
        kernel, x0, y0 = Image.LANCZOS, (w - cw / scale) / 2, (h - ch / scale) / 2
    pad = int(math.ceil(3 / min(scale, 1.0))) + 2
    a = np.array(im)
    a = np.pad(a, ((pad, pad), (pad, pad)) + (((0, 0),) if a.ndim == 3 else ()), mode="edge")
    return Image.fromarray(a).resize((cw, ch), kernel, box=(pad + x0, pad + y0, pad + x0 + cw / scale,
                                                            pad + y0 + ch / scale))


def decode(path, size, channels, fit):
    """sharp's resize(size, size, {fit, kernel: 'lanczos3', background: black}) with PIL: 'contain'
    scales by min(size / h, size / w), content sides rounded half up (libvips), centred on black;
    'fill' stretches (plain PIL Lanczos, close to but not exactly libvips)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)  # sharp's .rotate(): EXIF orientation applied
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")  # sharp flattens alpha onto black
            im = Image.new("RGB", rgba.size, 0)
            im.paste(rgba, mask=rgba.getchannel("A"))
        im = im.convert("L" if channels == 1 else "RGB")
        if fit == "fill":
            out = im.resize((size, size), Image.LANCZOS)
        else:
            w, h = im.size
            scale = min(size / h, size / w)
            cw = min(size, max(1, int(math.floor(w * scale + 0.5))))
            ch = min(size, max(1, int(math.floor(h * scale + 0.5))))
            out = Image.new(im.mode, (size, size), 0)
            out.paste(sharp_resize(im, cw, ch, scale), ((size - cw) // 2, (size - ch) // 2))
        a = np.array(out, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


class CachedImages(torch.utils.data.Dataset):
    """Files decoded once (lazily, on first use) to uint8 HWC arrays; `transform` maps a float
    CHW tensor in 0-255 to the model input, per image, every epoch."""

    def __init__(self, items, size, channels, fit, transform, timer):
        self.items, self.size, self.channels, self.fit = items, size, channels, fit
        self.transform, self.timer = transform, timer
        self.cache = [None] * len(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if self.cache[i] is None:
            t0 = time.perf_counter()
            self.cache[i] = decode(self.items[i][0], self.size, self.channels, self.fit)
            self.timer["decode"] += time.perf_counter() - t0
        x = torch.from_numpy(self.cache[i]).permute(2, 0, 1).float()
        return self.transform(x), int(self.items[i][1])


def recipe_transforms(recipe):
    """(train transform, evaluation transform) on float CHW tensors in 0-255."""
    if recipe == "brain-finetune":
        pre = T.Lambda(lambda x: x / 127.5 - 1)
        return T.Compose([T.RandomHorizontalFlip(), pre]), pre
    if recipe == "simple-cnn-letterbox":
        pre = T.Lambda(lambda x: x / 255)
        # torchvision's RandomRotation: nearest neighbour, fill 0, about the centre (as the TS side).
        return T.Compose([T.RandomHorizontalFlip(), T.RandomRotation(10), pre]), pre
    if recipe == "busi":
        pre = T.Compose([T.Lambda(lambda x: x / 255), T.Normalize([0.5], [0.5])])
        aug = T.Compose([T.Lambda(lambda x: x / 255), T.GaussianBlur(5, (0.1, 2.0)), T.RandomErasing(p=0.5),
                         T.Normalize([0.5], [0.5])])
        return aug, pre
    raise ValueError(f"unknown recipe {recipe!r}")


# --------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------

def metrics(confusion, loss_sum, n, normal):
    cm = np.asarray(confusion)
    k = cm.shape[0]
    correct = int(np.trace(cm))
    f1s = []
    for c in range(k):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    out = {"accuracy": correct / max(n, 1), "loss": loss_sum / max(n, 1), "macro_f1": float(np.mean(f1s)),
           "confusion": cm.tolist()}
    if normal is not None:
        abnormal = [c for c in range(k) if c != normal]
        out["missed_findings"] = int(sum(cm[c, normal] for c in abnormal))
        out["abnormal"] = int(sum(cm[c, :].sum() for c in abnormal))
    return out


def evaluate(model, loader, k, normal, timer):
    model.eval()
    cm = np.zeros((k, k), dtype=np.int64)
    loss_sum, n = 0.0, 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            pred = logits.argmax(1)
            for t, p in zip(y.tolist(), pred.tolist()):
                cm[t, p] += 1
            n += len(y)
    timer["eval"] += time.perf_counter() - t0
    return metrics(cm, loss_sum, n, normal)


def subset(items, n, seed):
    if n is None or len(items) <= n:
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def run(job):
    t_start = time.perf_counter()
    recipe = job["recipe"]
    threads = int(job.get("threads", 1))
    torch.set_num_threads(threads)
    seed = int(job.get("seed", 0))
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    mobilenet = recipe in ("brain-finetune", "busi")
    size = int(job.get("size") or (224 if mobilenet else 128))
    channels = int(job.get("channels") or (3 if mobilenet else 1))
    if mobilenet and channels != 3:
        raise ValueError(f"{recipe}: the ImageNet MobileNetV2 needs channels 3, got {channels}")
    fit = job.get("fit", "contain")
    epochs, batch = int(job.get("epochs", 1)), int(job.get("batch", 32))
    classes = job["classes"]
    k = len(classes)
    normal = classes.index(job["normal_class"]) if job.get("normal_class") is not None else None
    max_images = job.get("max_images")
    train_items = subset(job["train"], max_images, seed)
    val_items = subset(job.get("validation") or [], max_images, seed + 1)
    test_items = subset(job.get("test") or [], max_images, seed + 2)

    timer = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0, "eval": 0.0, "decode": 0.0}
    train_tf, eval_tf = recipe_transforms(recipe)
    frozen = []
    if mobilenet:
        backbone = MobileNetV2Keras(alpha=0.35, bn_momentum=float(job.get("bn_momentum", 0.1)))
        h5 = job.get("h5") or DEFAULT_H5
        n = load_keras_h5(backbone, h5)
        log(f"[{recipe}] {n} weight tensors loaded from {h5}")
        model = TransferNet(backbone, k)
        frozen = set_trainable_from(model, "block_13_expand")
    else:
        model = simple_cnn(channels, k, size)
    params = [p for p in model.parameters() if p.requires_grad]
    log(f"[{recipe}] {sum(p.numel() for p in params)} trainable of {sum(p.numel() for p in model.parameters())} "
        f"parameters; {len(train_items)} train / {len(val_items)} validation / {len(test_items)} test images, "
        f"{size}x{size}x{channels} {fit}, {epochs} epochs, batch {batch}, {threads} threads")
    opt_name = job.get("optimizer", "adam")
    optimizer = make_optimizer(opt_name, params, float(job.get("lr", 1e-3)))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs) if mobilenet else None

    gen = torch.Generator().manual_seed(seed)
    train_loader = torch.utils.data.DataLoader(
        CachedImages(train_items, size, channels, fit, train_tf, timer), batch_size=batch, shuffle=True,
        generator=gen, num_workers=0)

    def eval_loader(items):
        return torch.utils.data.DataLoader(CachedImages(items, size, channels, fit, eval_tf, timer),
                                           batch_size=batch, shuffle=False, num_workers=0)

    val_loader = eval_loader(val_items) if val_items else None
    history, train_seconds = [], 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        for m in frozen:
            m.eval()  # frozen BatchNorms use their moving statistics, as Keras
        loss_sum, correct, seen = 0.0, 0, 0
        t_epoch = time.perf_counter()
        it = iter(train_loader)
        while True:
            t0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                timer["data"] += time.perf_counter() - t0
                break
            t1 = time.perf_counter()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            t2 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            t4 = time.perf_counter()
            timer["data"] += t1 - t0
            timer["forward"] += t2 - t1
            timer["backward"] += t3 - t2
            timer["optimizer"] += t4 - t3
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        seconds = time.perf_counter() - t_epoch
        train_seconds += seconds
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch, "lr": lr, "train_loss": loss_sum / max(seen, 1),
               "train_accuracy": correct / max(seen, 1), "seconds": seconds,
               "images_per_second": seen / seconds if seconds > 0 else None}
        if val_loader is not None:
            t0 = time.perf_counter()
            v = evaluate(model, val_loader, k, normal, timer)
            row.update({"val_accuracy": v["accuracy"], "val_loss": v["loss"], "val_macro_f1": v["macro_f1"],
                        "missed_findings": v.get("missed_findings"), "abnormal": v.get("abnormal"),
                        "confusion": v["confusion"], "eval_seconds": time.perf_counter() - t0})
        history.append(row)
        log(f"[{recipe}] epoch {epoch}/{epochs}: loss {row['train_loss']:.4f} acc {row['train_accuracy']:.3f} "
            f"{seconds:.1f}s ({row['images_per_second']:.1f} img/s)"
            + (f"; val acc {row['val_accuracy']:.3f} loss {row['val_loss']:.4f} missed {row['missed_findings']}"
               if val_loader is not None else ""))

    out = {"recipe": recipe, "threads": threads, "torch_version": torch.__version__, "size": size,
           "channels": channels, "fit": fit, "optimizer": opt_name, "train_images": len(train_items),
           "validation_images": len(val_items), "epochs": history}
    if test_items:
        out["test"] = evaluate(model, eval_loader(test_items), k, normal, timer)
        log(f"[{recipe}] test acc {out['test']['accuracy']:.3f} missed {out['test'].get('missed_findings')}")
    out["total_seconds"] = time.perf_counter() - t_start
    out["images_per_second"] = sum(len(train_items) for _ in history) / train_seconds if train_seconds else None
    out["phases"] = timer
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return out


def check_forward(h5):
    """Pooled 1280 features of the .h5-loaded backbone for a fixed NHWC input in [-1, 1]."""
    torch.set_num_threads(1)
    backbone = MobileNetV2Keras(alpha=0.35)
    n = load_keras_h5(backbone, h5)
    backbone.eval()
    x = np.linspace(-1, 1, 224 * 224 * 3, dtype=np.float32).reshape(1, 224, 224, 3)
    with torch.no_grad():
        f = backbone(torch.from_numpy(x).permute(0, 3, 1, 2)).mean(dim=(2, 3))[0].numpy().astype(np.float64)
    return {"source": "torch", "weights": n, "mean": f.mean(), "std": f.std(), "first": f[:5].tolist(),
            "max": f.max(), "features": f.tolist()}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check-forward":
        print(json.dumps(check_forward(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_H5)))
    else:
        print(json.dumps(run(json.load(sys.stdin))))
