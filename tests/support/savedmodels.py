"""Tiny TF Hub-style SavedModels that the tests build themselves.

They follow the Reusable SavedModel API of TF Hub: a callable object with
``variables``, ``trainable_variables`` and ``regularization_losses``
attributes, and a ``training`` argument on ``__call__``. No network needed.

- `save_image_module`: an image feature vector (mean colour -> dense ->
  batch norm -> relu), with a regularization loss on its kernel.
- `save_bert_encoder`: a BERT-style encoder taking ``input_word_ids``,
  ``input_mask`` and ``input_type_ids`` and returning ``pooled_output`` and
  ``sequence_output``.
- `save_bert_preprocess`: its preprocess model (strings -> the three id
  tensors), with ``tokenize`` and ``bert_pack_inputs`` like the real ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import tensorflow as tf

FEATURES = 8
VOCAB = 64
HIDDEN = 16
SEQ_LEN = 128
CLS_ID, SEP_ID = 1, 2
REG_SCALE = 0.01


def _reusable(
    obj: tf.train.Checkpoint,
    call: Callable,
    variables: Sequence[tf.Variable],
    trainable: Sequence[tf.Variable],
    reg_losses: Sequence[Callable] = (),
) -> None:
    obj.__call__ = call
    obj.variables = list(variables)
    obj.trainable_variables = list(trainable)
    obj.regularization_losses = list(reg_losses)


def save_image_module(path: str | os.PathLike, seed: int = 0) -> str:
    """Saves an image feature-vector module taking [0, 1] pixels.

    Returns:
        The folder path.
    """
    tf.random.set_seed(seed)
    obj = tf.train.Checkpoint()
    kernel = tf.Variable(tf.random.normal((3, FEATURES)), name="dense/kernel")
    bias = tf.Variable(tf.zeros(FEATURES), name="dense/bias")
    gamma = tf.Variable(tf.ones(FEATURES), name="bn/gamma")
    beta = tf.Variable(tf.zeros(FEATURES), name="bn/beta")
    mean = tf.Variable(tf.zeros(FEATURES), trainable=False, name="bn/moving_mean")
    var = tf.Variable(tf.ones(FEATURES), trainable=False, name="bn/moving_variance")

    @tf.function(
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)]
        + [tf.TensorSpec((), tf.bool)]
    )
    def _call(images, training):
        x = tf.reduce_mean(images, axis=[1, 2]) @ kernel + bias

        def train_stats():
            m, v = tf.nn.moments(x, axes=[0])
            mean.assign(0.9 * mean + 0.1 * m)
            var.assign(0.9 * var + 0.1 * v)
            return m, v

        m, v = tf.cond(training, train_stats, lambda: (mean + 0.0, var + 0.0))
        x = tf.nn.batch_normalization(x, m, v, beta, gamma, 1e-3)
        return tf.nn.relu(x)

    @tf.function(input_signature=[])
    def _reg():
        return REG_SCALE * tf.reduce_sum(tf.square(kernel))

    @tf.function
    def call(images, training=False):
        return _call(images, tf.constant(training))

    call.get_concrete_function(tf.TensorSpec((None, None, None, 3), tf.float32))
    call.get_concrete_function(
        tf.TensorSpec((None, None, None, 3), tf.float32), training=True
    )
    obj._call, obj._reg = _call, _reg
    _reusable(
        obj,
        call,
        [kernel, bias, gamma, beta, mean, var],
        [kernel, bias, gamma, beta],
        [_reg],
    )
    tf.saved_model.save(obj, str(path))
    return str(path)


_ENCODER_INPUTS = {
    "input_word_ids": tf.TensorSpec((None, None), tf.int32),
    "input_mask": tf.TensorSpec((None, None), tf.int32),
    "input_type_ids": tf.TensorSpec((None, None), tf.int32),
}


def save_bert_encoder(path: str | os.PathLike, seed: int = 0) -> str:
    """Saves a one-layer BERT-style encoder with TF Hub BERT's interface.

    Returns:
        The folder path.
    """
    tf.random.set_seed(seed)
    obj = tf.train.Checkpoint()
    words = tf.Variable(tf.random.normal((VOCAB, HIDDEN), stddev=0.5), name="words")
    types = tf.Variable(tf.random.normal((2, HIDDEN), stddev=0.5), name="types")
    layer = tf.Variable(tf.random.normal((HIDDEN, HIDDEN), stddev=0.3), name="layer")
    pooler = tf.Variable(tf.random.normal((HIDDEN, HIDDEN), stddev=0.3), name="pool")

    @tf.function
    def call(inputs, training=False):
        x = tf.gather(words, inputs["input_word_ids"])
        x += tf.gather(types, inputs["input_type_ids"])
        mask = tf.cast(inputs["input_mask"], tf.float32)[..., None]
        context = tf.reduce_sum(x * mask, 1, keepdims=True) / tf.maximum(
            tf.reduce_sum(mask, 1, keepdims=True), 1.0
        )
        sequence = tf.tanh(tf.einsum("bld,de->ble", x + context, layer))
        if training:
            sequence = tf.nn.dropout(sequence, 0.1)
        pooled = tf.tanh(sequence[:, 0] @ pooler)
        return {"pooled_output": pooled, "sequence_output": sequence}

    call.get_concrete_function(_ENCODER_INPUTS)
    call.get_concrete_function(_ENCODER_INPUTS, training=True)
    variables = [words, types, layer, pooler]
    _reusable(obj, call, variables, variables)
    tf.saved_model.save(obj, str(path))
    return str(path)


def _tokenize(text: tf.Tensor) -> tf.Tensor:
    tokens = tf.strings.split(tf.strings.lower(text))
    ids = tf.strings.to_hash_bucket_fast(tokens, VOCAB - 3) + 3
    return tf.cast(ids, tf.int32)


def _pack(tokens: tf.RaggedTensor, seq_length: tf.Tensor) -> dict[str, tf.Tensor]:
    body = tokens[:, : seq_length - 2]
    n = tf.shape(body.row_lengths())[0]
    cls = tf.fill([n, 1], CLS_ID)
    sep = tf.fill([n, 1], SEP_ID)
    ids = tf.concat([cls, body, sep], axis=1)
    shape = tf.stack([n, seq_length])
    word_ids = ids.to_tensor(shape=shape)
    mask = tf.ones_like(ids).to_tensor(shape=shape)
    return {
        "input_word_ids": word_ids,
        "input_mask": mask,
        "input_type_ids": tf.zeros_like(word_ids),
    }


def save_bert_preprocess(path: str | os.PathLike) -> str:
    """Saves a preprocess model: strings -> word ids, mask and type ids.

    ``__call__`` packs to 128 tokens; ``tokenize`` and ``bert_pack_inputs``
    (with ``seq_length``) allow other lengths, as in TF Hub's BERT models.

    Returns:
        The folder path.
    """
    obj = tf.train.Checkpoint()
    strings = tf.TensorSpec((None,), tf.string)
    ragged = tf.RaggedTensorSpec((None, None), tf.int32)

    @tf.function(input_signature=[strings])
    def call(text):
        return _pack(_tokenize(text), SEQ_LEN)

    @tf.function(input_signature=[strings])
    def tokenize(text):
        return _tokenize(text)

    @tf.function(input_signature=[[ragged], tf.TensorSpec((), tf.int32)])
    def bert_pack_inputs(segments, seq_length):
        return _pack(segments[0], seq_length)

    obj.tokenize = tokenize
    obj.bert_pack_inputs = bert_pack_inputs
    _reusable(obj, call, [], [])
    tf.saved_model.save(obj, str(path))
    return str(path)
