"""Networks: devices, timm backbones with ens's heads and attention, pretrained weights, torch files."""
