"""`[CLS] a [SEP] (b [SEP])` packing of one or two token-id segments in a few dense graph ops.

keras-hub's `MultiSegmentPacker` gives the same ids, but its general trimmer
and ragged concatenations build about 930 graph ops for one segment and 1,600
for a pair. Every tf.data pipeline, `pack_ragged` call and SavedModel
signature of a BERT-family model traces that graph, and each server load
instantiates it again: the packer was two thirds of the preprocessor's graph
and most of its tracing time. Here a pair's cut is given as the lengths to
keep (`BertPreprocessor._pair_lengths`), so packing is only placing tokens:
one gather.
"""

import tensorflow as tf


def pack_segments(segments, sequence_length, start_id, end_id, pad_id, separator_length=1, keep=None):
    """`(token_ids, segment_ids)`, int32 `[B, sequence_length]`, of one or two ragged id segments.

    Layout (as keras-hub's `MultiSegmentPacker`): start, segment 0, then for a
    pair `separator_length` end ids (BERT `[SEP]`, RoBERTa `</s></s>`) and
    segment 1, then the end id, then padding. Segment ids are 0 up to the
    first separator, 1 for segment 1 and the final end id, 0 for padding.
    `keep`: per segment, `[B]` counts of leading tokens to keep (they must
    fit). Without it, segments are cut as keras-hub's "waterfall" cuts them:
    the first keeps what fits, the second what room is left.
    """
    if len(segments) not in (1, 2):
        raise ValueError(f"Expected 1 or 2 segments, got {len(segments)}")
    unbatched = segments[0].shape.rank == 1  # one text's ids
    if unbatched:
        segments = [s[None, :] for s in segments]
    segments = [s if isinstance(s, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(s) for s in segments]
    length = sequence_length
    batch = segments[0].nrows(out_type=tf.int32)
    # Each segment dense and cut to `length` columns (`keep` fits them in the room left by the specials).
    dense = [tf.cast(s.to_tensor(default_value=pad_id, shape=[None, length]), tf.int32) for s in segments]
    room = length - 2 - (separator_length if len(segments) == 2 else 0)
    if keep is None:
        keep = [tf.cast(s.row_lengths(), tf.int32) for s in segments]
        keep[0] = tf.minimum(keep[0], room)
        if len(segments) == 2:
            keep[1] = tf.minimum(keep[1], room - keep[0])
    first = tf.cast(keep[0], tf.int32)[:, None]

    def column(value, width=1):
        return tf.fill([batch, width], tf.constant(value, tf.int32))

    # The source row every output position reads from:
    # [start | a (length) | separators | b (length) | end].
    parts = [column(start_id), dense[0]]
    if len(segments) == 2:
        parts += [column(end_id, separator_length), dense[1]]
    parts.append(column(end_id))
    source = tf.concat(parts, axis=1)

    position = tf.range(length, dtype=tf.int32)[None, :]
    end_at = 1 + first  # single segment: the end id's position
    index = position  # start and segment 0 read their own columns
    segment_ids = tf.zeros([batch, length], tf.int32)
    if len(segments) == 2:
        b_at = end_at + separator_length
        end_at = b_at + tf.cast(keep[1], tf.int32)[:, None]
        separators = (position >= 1 + first) & (position < b_at)
        index = tf.where(separators, 1 + length + (position - 1 - first), index)
        in_b = (position >= b_at) & (position < end_at)
        index = tf.where(in_b, 1 + length + separator_length + (position - b_at), index)
        segment_ids = tf.cast((position >= b_at) & (position <= end_at), tf.int32)
    index = tf.where(position == end_at, tf.shape(source)[1] - 1, index)  # the end id: the last column
    token_ids = tf.gather(source, index, batch_dims=1)
    token_ids = tf.where(position > end_at, pad_id, token_ids)
    if unbatched:
        return token_ids[0], segment_ids[0]
    return token_ids, segment_ids
