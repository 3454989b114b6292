"""A local Binance spot emulator for tests: real HTTP on 127.0.0.1, a clock, fault injection."""

from tests.emulator.binance import (
    DATA_FAULTS,
    FAULT_KINDS,
    HTTP_FAULTS,
    RECOVERABLE_FAULTS,
    BinanceEmulator,
    EmulatorClock,
    RequestRecord,
    epoch_ms,
    running_emulator,
)

__all__ = [
    "DATA_FAULTS",
    "FAULT_KINDS",
    "HTTP_FAULTS",
    "RECOVERABLE_FAULTS",
    "BinanceEmulator",
    "EmulatorClock",
    "RequestRecord",
    "epoch_ms",
    "running_emulator",
]
