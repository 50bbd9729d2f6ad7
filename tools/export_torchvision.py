#!/usr/bin/python3
"""Converts PyTorch weights to a safetensors file that resnet::io::load_safetensors reads.

Plain Python + torch (torchvision only for --arch); no safetensors package needed.

  export_torchvision.py --arch resnet18 [--pretrained] [--num-classes N] OUT.safetensors
      a torchvision model's state_dict(): random weights (torch.manual_seed(--seed)), or with --pretrained the
      IMAGENET1K_V1 weights torchvision downloads. The layouts resnet loads: resnet18, resnet34, resnet50,
      resnet101, resnet152, wide_resnet50_2, wide_resnet101_2, resnext50_32x4d, resnext101_32x8d (--model is
      the same option)
  export_torchvision.py --state-dict weights.pth OUT.safetensors
      any state dict saved with torch.save(model.state_dict(), ...), or a checkpoint dict holding one under
      "state_dict" or "model"; a "module." prefix on every key (DataParallel) is removed

Names and layouts stay exactly as PyTorch's state_dict() has them (conv weights OIHW, Linear [out, in],
bnX.num_batches_tracked an int64 scalar): resnet's models use the same names, so the file loads unchanged.
--dtype f16 or bf16 halves the file (floating-point tensors only; the loader converts to the model's type).

The file layout: an 8-byte little-endian header length, a JSON header {"__metadata__": {string: string}, name:
{"dtype", "shape", "data_offsets"}, ...} padded with spaces to a multiple of 8 bytes, then the raw little-endian
data of every tensor, in state-dict order, back to back.
"""

import argparse
import json
import os
import struct
import sys
import tempfile

try:
    import torch
except ImportError:
    sys.exit("%s needs PyTorch, which %s does not have. On Debian: apt-get install python3-torch "
             "python3-torchvision, then run ./tools/export_torchvision.py (its first line names /usr/bin/python3) "
             "or /usr/bin/python3 tools/export_torchvision.py" % (os.path.basename(sys.argv[0]), sys.executable))

# torch dtype -> (safetensors dtype, little-endian numpy dtype of the bytes written)
DTYPES = {
    torch.float16: ("F16", "<f2"),
    torch.bfloat16: ("BF16", "<i2"),  # numpy has no bfloat16: its bit pattern is written as int16
    torch.float32: ("F32", "<f4"),
    torch.float64: ("F64", "<f8"),
    torch.int64: ("I64", "<i8"),
}
DTYPE_NAMES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32, "f64": torch.float64}


def tensor_bytes(t):
    dtype, np_dtype = DTYPES[t.dtype]
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return dtype, t.numpy().astype(np_dtype).tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: ordered dict name -> torch tensor (dtypes in DTYPES); metadata: dict str -> str.
    Written to a temporary file in the same directory, then renamed: an existing file is replaced whole or not
    at all."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    chunks, offset = [], 0
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise ValueError("%s: dtype %s cannot be written (supported: %s)" % (name, t.dtype, list(DTYPES)))
        dtype, data = tensor_bytes(t)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # pad so the data starts 8-byte aligned, as safetensors writers do
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)  # mkstemp creates the file 0600; give it the permissions open() would
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def convert(state_dict, dtype):
    """Floating-point tensors to `dtype`; integer tensors (num_batches_tracked) unchanged. Non-tensor entries
    (a few checkpoints keep strings or numbers next to the weights) are dropped."""
    result = {}
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue
        result[name] = value.to(dtype) if value.is_floating_point() else value
    return result


def load_state_dict(path):
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        loaded = torch.load(path, map_location="cpu")
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict):
        raise ValueError("%s holds a %s, not a state dict" % (path, type(loaded).__name__))
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return loaded


def torchvision_state_dict(name, pretrained, num_classes, seed):
    import torchvision

    if pretrained:
        weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
        if num_classes not in (None, 1000):
            raise ValueError("--pretrained weights have 1000 classes; drop --num-classes and skip 'fc.' when "
                             "loading instead")
        return torchvision.models.get_model(name, weights=weights).state_dict()
    torch.manual_seed(seed)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return torchvision.models.get_model(name, **kwargs).state_dict()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", "--model", dest="model",
                        help="a torchvision model name: resnet18, resnet34, resnet50, resnet101, resnet152, "
                             "wide_resnet50_2, wide_resnet101_2, resnext50_32x4d or resnext101_32x8d")
    source.add_argument("--state-dict", metavar="FILE", help="a .pth file from torch.save")
    parser.add_argument("--pretrained", action="store_true", help="with --model: torchvision's ImageNet weights")
    parser.add_argument("--num-classes", type=int, help="with --model: size of the fc layer (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="with --model: torch.manual_seed for random weights")
    parser.add_argument("--dtype", choices=sorted(DTYPE_NAMES), default="f32",
                        help="type of floating-point tensors in the file (default f32)")
    parser.add_argument("output", help="the .safetensors file to write")
    args = parser.parse_args(argv)

    # "format": "pt" as the safetensors package writes for PyTorch.
    metadata = {"format": "pt"}
    if args.model:
        state_dict = torchvision_state_dict(args.model, args.pretrained, args.num_classes, args.seed)
        metadata["source"] = "torchvision.models.%s%s" % (args.model, " IMAGENET1K_V1" if args.pretrained else "")
        # What resnet::models::ResNet::architecture() records, so that a strict load into another
        # architecture says which one the file holds. A --state-dict file is checked by names and shapes alone.
        conv1 = state_dict["conv1.weight"]
        bottleneck = "layer1.0.conv3.weight" in state_dict
        # A Bottleneck's conv2 in layer1 has width = planes (64) * width_per_group / 64 * groups channels in
        # `groups` groups, so its weight is [width, width / groups, 3, 3].
        width, per_group = state_dict["layer1.0.conv2.weight"].shape[:2]
        groups = width // per_group if bottleneck else 1
        width_per_group = per_group if bottleneck else 64
        # Each stage's planes: its first block's last conv has planes * expansion (4 or 1) output channels.
        last = "conv3" if bottleneck else "conv2"
        widths = [state_dict["layer%d.0.%s.weight" % (s, last)].shape[0] // (4 if bottleneck else 1)
                  for s in range(1, 5)]
        metadata.update({"architecture": args.model, "block": "bottleneck" if bottleneck else "basic",
                         "groups": str(groups), "width_per_group": str(width_per_group), "stem": "imagenet",
                         "in_channels": str(conv1.shape[1]), "num_classes": str(state_dict["fc.weight"].shape[0]),
                         "base_width": str(conv1.shape[0]), "widths": "-".join(str(w) for w in widths)})
    else:
        state_dict = load_state_dict(args.state_dict)
        metadata["source"] = os.path.basename(args.state_dict)
    tensors = convert(state_dict, DTYPE_NAMES[args.dtype])
    write_safetensors(args.output, tensors, metadata)
    print("%s: %d tensors, %d bytes, from %s" %
          (args.output, len(tensors), os.path.getsize(args.output), metadata["source"]), file=sys.stderr)


if __name__ == "__main__":
    main()
