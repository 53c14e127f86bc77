"""Backbones from ``keras.applications``: VGG16, ResNet50, MobileNet, EfficientNet.

Each entry declares its constructor, preprocessing mode, layer groups and the
name of its ImageNet weights file. Nothing here builds a classifier.
"""

from __future__ import annotations

import functools

import keras

from tltf.backbones.registry import register_backbone
from tltf.backbones.spec import BackboneSpec

_WEIGHTS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _app(constructor, **fixed):
    """Adapts a ``keras.applications`` constructor to the spec signature."""

    @functools.wraps(constructor)
    def build(input_shape, weights):
        return constructor(
            include_top=False, weights=weights, input_shape=input_shape, **fixed
        )

    return build


def _stages(prefix_by_group: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(prefix_by_group.items())


VGG16 = register_backbone(
    BackboneSpec(
        name="keras:vgg16",
        modality="image",
        constructor=_app(keras.applications.VGG16),
        default_input_shape=(224, 224, 3),
        preprocessing="caffe",
        group_patterns=_stages({f"block{i}": rf"^block{i}_" for i in range(1, 6)}),
        weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_url=_WEIGHTS_BASE
        + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        description="VGG16 (ImageNet), 14.7M parameters, groups block1-block5",
    ),
    aliases=("vgg16",),
)

RESNET50 = register_backbone(
    BackboneSpec(
        name="keras:resnet50",
        modality="image",
        constructor=_app(keras.applications.ResNet50),
        default_input_shape=(224, 224, 3),
        preprocessing="caffe",
        group_patterns=(("stem", r"^(conv1_|pool1_)"),)
        + _stages({f"conv{i}": rf"^conv{i}_" for i in range(2, 6)}),
        weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_url=_WEIGHTS_BASE
        + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        description="ResNet50 (ImageNet), 23.6M parameters, groups stem, conv2-conv5",
    ),
    aliases=("resnet50",),
)

MOBILENET_V2 = register_backbone(
    BackboneSpec(
        name="keras:mobilenet_v2",
        modality="image",
        constructor=_app(keras.applications.MobileNetV2),
        default_input_shape=(224, 224, 3),
        preprocessing="tf",
        group_patterns=(
            ("stem", r"^(Conv1|bn_Conv1|Conv1_relu|expanded_conv_)"),
            ("stage1", r"^block_[12]_"),
            ("stage2", r"^block_[3-5]_"),
            ("stage3", r"^block_([6-9]|1[0-2])_"),
            ("stage4", r"^block_1[3-6]_"),
            ("top", r"^(Conv_1|out_relu)"),
        ),
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        weights_url=_WEIGHTS_BASE
        + "mobilenet_v2/"
        + "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        description="MobileNetV2 1.0 (ImageNet), 2.3M parameters, groups stem, "
        "stage1-stage4, top",
    ),
    aliases=("mobilenet_v2", "mobilenetv2"),
)

MOBILENET_V3_SMALL = register_backbone(
    BackboneSpec(
        name="keras:mobilenet_v3_small",
        modality="image",
        # Keras builds the 0-255 -> [-1, 1] rescaling into MobileNetV3.
        constructor=_app(
            keras.applications.MobileNetV3Small, include_preprocessing=True
        ),
        default_input_shape=(224, 224, 3),
        preprocessing="none",
        group_patterns=(
            ("stem", r"^(rescaling|conv$|conv_bn|activation$|expanded_conv_(?!\d))"),
            ("stage1", r"^expanded_conv_[12]_"),
            ("stage2", r"^expanded_conv_[3-7]_"),
            ("stage3", r"^expanded_conv_([89]|10)_"),
            ("top", r"^conv_1"),
        ),
        weights_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        weights_url=_WEIGHTS_BASE
        + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        description="MobileNetV3-Small (ImageNet), 0.9M parameters, groups stem, "
        "stage1-stage3, top",
    ),
    aliases=("mobilenet_v3_small", "mobilenetv3small"),
)

EFFICIENTNET_B0 = register_backbone(
    BackboneSpec(
        name="keras:efficientnet_b0",
        modality="image",
        # Keras builds the 0-255 rescaling and normalization into EfficientNet.
        constructor=_app(keras.applications.EfficientNetB0),
        default_input_shape=(224, 224, 3),
        preprocessing="none",
        group_patterns=(("stem", r"^(rescaling|normalization|stem_)"),)
        + _stages({f"block{i}": rf"^block{i}[a-z]_" for i in range(1, 8)})
        + (("top", r"^top_"),),
        weights_file="efficientnetb0_notop.h5",
        weights_url=_WEIGHTS_BASE + "efficientnetb0_notop.h5",
        description="EfficientNetB0 (ImageNet), 4.0M parameters, groups stem, "
        "block1-block7, top",
    ),
    aliases=("efficientnet_b0", "efficientnetb0"),
)
