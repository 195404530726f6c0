"""RFID layer of the edge node: the UHF reader module's serial protocol and its driver.

``codec`` is pure (bytes in, dataclasses out); ``driver`` is the thin pyserial shell around it.
"""

from edge.rfid.codec import (
    ErrorResponse,
    Frame,
    FrameError,
    QueryParams,
    Region,
    StreamDecoder,
    TagNotice,
    crc16_gen2,
    decode_notice,
    encode_frame,
)

__all__ = [
    "ErrorResponse",
    "Frame",
    "FrameError",
    "QueryParams",
    "Region",
    "StreamDecoder",
    "TagNotice",
    "crc16_gen2",
    "decode_notice",
    "encode_frame",
]
