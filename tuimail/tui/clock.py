"""The widgets' clock lives in `tuimail.core.clock` (the demo state below the TUI needs it too)."""

from tuimail.core.clock import Clock, fixed_clock

__all__ = ["Clock", "fixed_clock"]
