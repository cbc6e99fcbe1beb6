from eebench.heads.modules import ExitHeads
from eebench.heads.store import load_heads, save_heads
from eebench.heads.types.linear import LinearHead

__all__ = ["ExitHeads", "LinearHead", "load_heads", "save_heads"]
