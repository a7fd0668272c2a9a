"""A residual network for 32 x 32 pictures, written for deepphoenix's tests in the layout
of the CIFAR ResNets people copy (kuangliu/pytorch-cifar's): a `ResNet` class that keeps
`in_planes`, a 3 x 3 stem, four stages built by `_make_layer`, a classifier sized by
`block.expansion`; shrunk to CPU size (stages 16, 32, 64, 128 wide, one block each)."""

import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions and a shortcut."""

    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.first = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.first_norm = nn.BatchNorm2d(planes)
        self.second = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.second_norm = nn.BatchNorm2d(planes)
        out = planes * self.expansion
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.first_norm(self.first(x)))
        y = self.second_norm(self.second(y))
        return F.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    """1 x 1 down, 3 x 3, 1 x 1 up by `expansion`, and a shortcut."""

    expansion = 4

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        out = planes * self.expansion
        self.reduce = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.reduce_norm = nn.BatchNorm2d(planes)
        self.spatial = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.spatial_norm = nn.BatchNorm2d(planes)
        self.expand = nn.Conv2d(planes, out, 1, bias=False)
        self.expand_norm = nn.BatchNorm2d(out)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.reduce_norm(self.reduce(x)))
        y = F.relu(self.spatial_norm(self.spatial(y)))
        y = self.expand_norm(self.expand(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16

        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 128, num_blocks[3], stride=2)
        self.linear = nn.Linear(128 * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for step in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, step))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4).flatten(1)
        return self.linear(out)


def resnet10():
    return ResNet(BasicBlock, [1, 1, 1, 1])


def resnet26_bottleneck():
    return ResNet(Bottleneck, [2, 2, 2, 2])


model = ResNet(block=BasicBlock, num_blocks=[1, 1, 1, 1])
