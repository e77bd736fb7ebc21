#!/usr/bin/env python3
"""The Fashion-MNIST network of apps/fashion_cnn.hpp, written in PyTorch,
reading and writing tapegrad's safetensors files with json + struct only.

  torch_interop.py compare MODEL INPUTS LOGITS
      Loads MODEL (saved by tapegrad) into the PyTorch network, runs it in
      eval mode on INPUTS and compares with tapegrad's LOGITS (within 1e-5).
  torch_interop.py export SEED INPUTS MODEL_OUT LOGITS_OUT
      Builds the network in PyTorch with random weights and random running
      statistics, saves its state_dict as MODEL_OUT and its eval-mode logits
      on INPUTS as LOGITS_OUT, for tapegrad to load and compare.

Exit code 77 (a skip for CTest) when PyTorch is not installed.
"""
import json
import struct
import sys

try:
    import torch
    import torch.nn as nn
except ImportError:
    print("SKIPPED: PyTorch is not installed (apt-get install python3-torch)")
    sys.exit(77)

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "I64": (torch.int64, 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, size = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        count = (end - begin) // size
        values = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if count else torch.empty(0, dtype=dtype)
        tensors[name] = values.reshape(entry["shape"]).clone()
    return tensors, header.get("__metadata__", {})


def write_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def compare(model_path, inputs_path, logits_path):
    state, metadata = read_safetensors(model_path)
    net = FashionCNN()
    net.load_state_dict(state, strict=True)  # the same names, layouts and dtypes as PyTorch's state_dict
    net.eval()
    inputs = read_safetensors(inputs_path)[0]["images"]
    expected = read_safetensors(logits_path)[0]["logits"]
    with torch.no_grad():
        logits = net(inputs)
    scale = max(1.0, float(expected.abs().max()))
    worst = float((logits - expected).abs().max()) / scale
    print(f"PyTorch vs tapegrad logits on {len(inputs)} images: max difference {worst:.3g} (relative to {scale:.3g})")
    if metadata:
        print("metadata:", ", ".join(f"{k}={v}" for k, v in sorted(metadata.items())))
    return 0 if worst <= 1e-5 else 1


def export(seed, inputs_path, model_path, logits_path):
    torch.manual_seed(int(seed))
    net = FashionCNN()
    with torch.no_grad():  # running statistics that are not the identity, as after training
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(123)
    net.eval()
    inputs = read_safetensors(inputs_path)[0]["images"]
    with torch.no_grad():
        logits = net(inputs)
    write_safetensors(model_path, net.state_dict())
    write_safetensors(logits_path, {"logits": logits})
    print(f"wrote a PyTorch FashionCNN (seed {seed}) and its logits on {len(inputs)} images")
    return 0


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    sys.exit(compare(*args) if command == "compare" else export(*args))
