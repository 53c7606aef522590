#!/usr/bin/python3
"""PyTorch reference timings for `npm run bench` (Debian's python3-torch / torchvision).

Reads a JSON list of jobs on stdin, prints a JSON object of results. Models mirror the
TypeScript builders: SimpleCNN (the same layers), torchvision-style ResNet50V2 is not in
torchvision, so the ResNet50 (v1, same FLOPs class) stands in and is labelled as such;
MobileNetV2 width 0.35 is torchvision's mobilenet_v2(width_mult=0.35).
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torchvision


def simple_cnn(c, n, filters=(32, 64, 128), size=128, dense=128):
    layers, ch = [], c
    for f in filters:
        layers += [nn.Conv2d(ch, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), nn.ReLU(), nn.MaxPool2d(2)]
        ch = f
    s = size // (2 ** len(filters))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * s * s, dense), nn.ReLU(), nn.Dropout(0.5), nn.Linear(dense, n))


def user_cnn(c, n, size=128):
    """bench/common.ts userCnn: 3 x (conv 3x3 with bias + ReLU, max-pool 2), dense 128 + ReLU, dense."""
    layers, ch = [], c
    for f in (32, 64, 128):
        layers += [nn.Conv2d(ch, f, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        ch = f
    s = size // 8
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * s * s, 128), nn.ReLU(), nn.Linear(128, n))


def build(job):
    if job["model"] == "user-cnn":
        m = user_cnn(job["channels"], 4, size=job["size"])
        head = None
    elif job["model"] == "simple-cnn":
        m = simple_cnn(job["channels"], 4, size=job["size"])
        head = None
    elif job["model"] == "resnet50":
        m = torchvision.models.resnet50(num_classes=4)
        head = m.fc
        if job["train"] == "conv5":
            for name, p in m.named_parameters():
                p.requires_grad = name.startswith("layer4") or name.startswith("fc")
    else:
        m = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=4)
        head = m.classifier
        if job["train"] == "last-block":
            for name, p in m.named_parameters():
                p.requires_grad = name.startswith("features.17") or name.startswith("features.18") or name.startswith("classifier")
    if job["train"] == "frozen" and head is not None:
        for p in m.parameters():
            p.requires_grad = False
        for p in head.parameters():
            p.requires_grad = True
    return m


def run(job):
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    m = build(job)
    x = torch.randn(job["batch"], job["channels"], job["size"], job["size"])
    y = torch.randint(0, 4, (job["batch"],))
    if job["train"] == "inference":
        m.eval()
        with torch.no_grad():
            for _ in range(3):  # three warm-ups, as on the wasm side (bench/models.ts)
                m(x)
            t0 = time.perf_counter()
            for _ in range(job["steps"]):
                m(x)
    else:
        m.train()
        opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad()
            loss_fn(m(x), y).backward()
            opt.step()

        for _ in range(3):  # three warm-ups, as on the wasm side (bench/models.ts)
            step()
        t0 = time.perf_counter()
        for _ in range(job["steps"]):
            step()
    dt = (time.perf_counter() - t0) / job["steps"]
    return job["batch"] / dt


def transforms_bench(job):
    import torchvision.transforms as T
    torch.set_num_threads(job["threads"])
    imgs = torch.rand(job["batch"], 3, 256, 256) * 255
    pipe = T.Compose([T.Resize((224, 224), antialias=False), T.Grayscale(), T.GaussianBlur(5, (0.1, 2.0)),
                      T.RandomErasing(p=0.5), T.Normalize([127.5], [127.5])])
    for im in imgs[:4]:
        pipe(im)
    t0 = time.perf_counter()
    for _ in range(job["steps"]):
        for im in imgs:
            pipe(im)
    return job["batch"] * job["steps"] / (time.perf_counter() - t0)


def decode_bench(job):
    from PIL import Image
    import torchvision.transforms as T
    pipe = T.Compose([T.Grayscale(), T.Resize(224), T.CenterCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
    files = job["files"]
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            pipe(im.convert("RGB"))
    return len(files) / (time.perf_counter() - t0)


out = {"torch": torch.__version__, "results": []}
for job in json.load(sys.stdin):
    kind = job.get("kind", "model")
    ips = transforms_bench(job) if kind == "transforms" else decode_bench(job) if kind == "decode" else run(job)
    out["results"].append({**{k: v for k, v in job.items() if k != "files"}, "imagesPerSecond": ips})
print(json.dumps(out))
