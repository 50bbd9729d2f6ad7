"""The pre-activation ResNets of He et al. 2016 ("Identity Mappings in Deep Residual Networks") in PyTorch, laid
out as resnet::models::PreActResNet18 and resnet::models::WideResNet (include/resnet/models/resnet.hpp), so that
state dicts move between the two unchanged and tools/make_fixtures.py checks one against the other:

  conv1.weight                                     3x3 stride-1 conv, no bias, no BatchNorm after it
  layerS.B.{bn1,conv1,bn2,conv2}.*                 PreActBlock B of stage S (from 1)
  layerS.B.shortcut.weight                         where a block changes stride or width: 1x1 conv of relu(bn1(x))
  bn.*                                             the final BatchNorm (then ReLU, global average pool)
  fc.{weight,bias}

  from preact_resnet import preact_resnet18, wide_resnet
  model = wide_resnet(28, 10)                      # WRN-28-10, 36,479,194 parameters at 10 classes
"""

import torch.nn as nn
import torch.nn.functional as F


class PreActBlock(nn.Module):
    """out = conv2(relu(bn2(conv1(h)))) + shortcut, h = relu(bn1(x)); the shortcut is x, or a 1x1 conv of h when
    the stride is not 1 or the channel count changes. [N, in_channels, H, W] -> [N, planes, H', W']."""

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        projected = stride != 1 or in_channels != planes
        self.shortcut = nn.Conv2d(in_channels, planes, 1, stride, bias=False) if projected else None

    def forward(self, x):
        h = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(h)
        return self.conv2(F.relu(self.bn2(self.conv1(h)))) + shortcut


class PreActResNet(nn.Module):
    """conv1 (in_channels -> stem_width), then one stage per entry of blocks_per_stage with widths[s] channels
    (stride 1 in the first stage, 2 at the start of the others), relu(bn), global average pool, fc."""

    def __init__(self, blocks_per_stage, widths, stem_width, num_classes=10, in_channels=3):
        super().__init__()
        if len(blocks_per_stage) != len(widths):
            raise ValueError("%d stages of blocks, %d widths" % (len(blocks_per_stage), len(widths)))
        self.conv1 = nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False)
        channels = stem_width
        for s, (blocks, width) in enumerate(zip(blocks_per_stage, widths)):
            layer = []
            for b in range(blocks):
                layer.append(PreActBlock(channels, width, 2 if b == 0 and s > 0 else 1))
                channels = width
            self.add_module("layer%d" % (s + 1), nn.Sequential(*layer))
        self.num_stages = len(widths)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        # As torchvision's ResNet and resnet::models::ResNet::reset_parameters: convs Kaiming normal (fan_out,
        # ReLU gain); BatchNorm weight 1, bias 0 and fc PyTorch's defaults.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.conv1(x)
        for s in range(self.num_stages):
            x = getattr(self, "layer%d" % (s + 1))(x)
        x = F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1)
        return self.fc(x.flatten(1))


def preact_resnet18(num_classes=10, in_channels=3):
    """Stages of 2 blocks of widths 64/128/256/512 after a 64-channel conv1: 11,172,170 parameters at 10 classes."""
    return PreActResNet([2, 2, 2, 2], [64, 128, 256, 512], 64, num_classes, in_channels)


def wide_resnet(depth, widen_factor, num_classes=10, in_channels=3):
    """WRN-depth-k (Zagoruyko and Komodakis 2016): a 16-channel conv1, then 3 stages of (depth - 4) / 6 blocks of
    widths 16k, 32k, 64k."""
    if (depth - 4) % 6 != 0 or depth < 10:
        raise ValueError("WRN depth must be 6n + 4 for n >= 1 (10, 16, 22, 28, ...), got %d" % depth)
    if widen_factor < 1:
        raise ValueError("WRN widen_factor must be at least 1, got %d" % widen_factor)
    n = (depth - 4) // 6
    return PreActResNet([n] * 3, [16 * widen_factor, 32 * widen_factor, 64 * widen_factor], 16, num_classes,
                        in_channels)
